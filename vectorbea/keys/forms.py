"""Forms for provider keys and workspace secrets. The key and value fields are write-only:
they never render a value, and no validation message repeats what was typed."""

from urllib.parse import urlsplit

from django import forms

from vectorbea.keys.models import Provider
from vectorbea.llm.errors import KEY_SHAPES
from vectorbea.steps.templating import SECRET_NAME

MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 512


class ProviderKeyForm(forms.Form):
    provider = forms.ChoiceField(
        label="Provider",
        choices=Provider.choices,
        error_messages={
            "required": "Choose the provider this key is for.",
            "invalid_choice": "Choose OpenAI or Anthropic.",
        },
    )
    label = forms.CharField(
        label="Label (optional)",
        max_length=100,
        required=False,
        help_text="To tell keys apart, e.g. “Production” or “Marketing budget”.",
        error_messages={"max_length": "Keep the label under 100 characters."},
    )
    key = forms.CharField(
        label="API key",
        strip=True,
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "off",
                "autocapitalize": "off",
                "spellcheck": "false",
                "data-1p-ignore": "",
            },
        ),
        help_text=(
            "Stored encrypted. Once saved, nobody can read it here again, only its last four "
            "characters. A new key for the same provider replaces the old one."
        ),
        error_messages={"required": "Paste the API key from your provider’s dashboard."},
    )

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if any(ch.isspace() for ch in key):
            raise forms.ValidationError(
                "The key has spaces or line breaks in it. Copy it again from your provider’s "
                "dashboard, all on one line."
            )
        if not (key.isascii() and key.isprintable()):
            raise forms.ValidationError(
                "That does not look like an API key: it has characters keys never contain. "
                "Copy it again from your provider’s dashboard."
            )
        if len(key) < MIN_KEY_CHARS:
            raise forms.ValidationError(
                f"That is too short to be an API key ({len(key)} characters). Copy the whole "
                "key: provider keys are usually 40 characters or more."
            )
        if len(key) > MAX_KEY_CHARS:
            raise forms.ValidationError(
                f"That is too long to be an API key (over {MAX_KEY_CHARS} characters). Copy "
                "only the key."
            )
        return key

    def clean_label(self) -> str:
        label = " ".join(self.cleaned_data["label"].split())
        if KEY_SHAPES.search(label):
            self.scrub_label()
            raise forms.ValidationError(
                "The label looks like a key. Labels are shown to everyone who can see this "
                "page: paste the key in the API key box instead."
            )
        return label

    def clean(self) -> dict:
        data = super().clean()
        provider, key, label = data.get("provider"), data.get("key"), data.get("label")
        if key and label and key in label:
            self.scrub_label()
            self.add_error("label", "Leave the key out of the label: labels are shown to others.")
        if provider == Provider.OPENAI and key and key.startswith("sk-ant-"):
            self.add_error(
                "key",
                "That is an Anthropic key (it starts with sk-ant-). Choose Anthropic as the "
                "provider, or paste your OpenAI key.",
            )
        if provider == Provider.ANTHROPIC and key and key.startswith(("sk-proj-", "sk-svcacct-")):
            self.add_error(
                "key",
                "That looks like an OpenAI key. Choose OpenAI as the provider, or paste your "
                "Anthropic key (it starts with sk-ant-).",
            )
        return data

    def scrub_label(self) -> None:
        """A label with a key in it is not shown back either."""
        self.data = self.data.copy()
        self.data["label"] = ""


class PolicyForm(forms.Form):
    require_own_keys = forms.TypedChoiceField(
        label="When a provider has no key here",
        coerce=lambda value: value == "own",
        choices=[
            ("platform", "Use the installation’s key, if it has one"),
            ("own", "Fail the step: this workspace uses only its own keys"),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose what LLM steps do without a key of their own."},
    )


MIN_SECRET_CHARS = 8  # shorter values could not be told apart from ordinary text to redact
MAX_SECRET_CHARS = 4096


class SecretForm(forms.Form):
    """A workspace secret: a name steps use as {{ secrets.NAME }}, and a write-only value."""

    name = forms.CharField(
        label="Name",
        max_length=64,
        help_text="Steps use it as {{ secrets.NAME }}. Saving a name that exists replaces "
        "its value.",
        error_messages={
            "required": "Give the secret a name, e.g. GITHUB_TOKEN.",
            "max_length": "Keep the name to 64 characters or fewer.",
        },
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )
    value = forms.CharField(
        label="Value",
        strip=True,
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "off",
                "autocapitalize": "off",
                "spellcheck": "false",
                "data-1p-ignore": "",
            },
        ),
        help_text=(
            "Stored encrypted. Once saved, nobody can read it here again, only its last four "
            "characters. It is never shown in runs, logs or exports."
        ),
        error_messages={"required": "Paste the secret’s value."},
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not SECRET_NAME.fullmatch(name):
            raise forms.ValidationError(
                "Use letters, digits and _ only, starting with a letter (e.g. GITHUB_TOKEN): "
                "the name goes into {{ secrets.NAME }}."
            )
        return name

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        if any(ch in value for ch in "\r\n"):
            raise forms.ValidationError(
                "The value has line breaks in it. Paste it again, all on one line."
            )
        if not value.isprintable():
            raise forms.ValidationError(
                "The value has control characters in it. Paste it again from where it came from."
            )
        if len(value) < MIN_SECRET_CHARS:
            raise forms.ValidationError(
                f"The value is {len(value)} characters long; a secret needs at least "
                f"{MIN_SECRET_CHARS}, so it can be told apart from ordinary text and kept out "
                "of runs and logs."
            )
        if len(value) > MAX_SECRET_CHARS:
            raise forms.ValidationError(
                f"The value is longer than {MAX_SECRET_CHARS:,} characters. Paste only the secret."
            )
        return value


MIN_SERVER_KEY_CHARS = 8  # shorter could not be told apart from ordinary text to redact
RESERVED_NAMES = frozenset({"openai", "anthropic"})


class CompatibleProviderForm(forms.Form):
    """An OpenAI-compatible server: a name steps use, where it is, its default model and an
    optional write-only key."""

    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="Steps use it as their provider, e.g. “Local Ollama”. Saving a name that "
        "exists changes that provider.",
        error_messages={
            "required": "Give the provider a name, e.g. Local Ollama.",
            "max_length": "Keep the name to 100 characters or fewer.",
        },
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    base_url = forms.CharField(
        label="Base URL",
        max_length=500,
        help_text="Where its OpenAI-style API lives, up to /v1: Ollama "
        "http://localhost:11434/v1, vLLM http://host:8000/v1, LM Studio "
        "http://localhost:1234/v1, OpenRouter https://openrouter.ai/api/v1, Azure OpenAI "
        "https://RESOURCE.openai.azure.com/openai/v1.",
        error_messages={"required": "Say where the server is, e.g. http://localhost:11434/v1."},
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "url"}
        ),
    )
    default_model = forms.CharField(
        label="Default model",
        max_length=200,
        help_text="What steps that name no model ask for, e.g. llama3.2 or gpt-4o-mini.",
        error_messages={"required": "Name the model steps use by default, e.g. llama3.2."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    key = forms.CharField(
        label="Key (optional)",
        required=False,
        strip=True,
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "off",
                "autocapitalize": "off",
                "spellcheck": "false",
                "data-1p-ignore": "",
            },
        ),
        help_text="Only if the server wants one: a local server usually does not. Stored "
        "encrypted; once saved only its last four characters are shown. Left empty when "
        "changing a provider, its key stays.",
    )
    remove_key = forms.BooleanField(
        label="Remove its key", required=False, help_text="Call it without a key from now on."
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if name.lower() in RESERVED_NAMES:
            raise forms.ValidationError(
                f"“{name}” is the built-in provider’s name: choose another, e.g. “{name} proxy”."
            )
        if not name.isprintable() or any(ch in name for ch in "{}"):
            raise forms.ValidationError(
                "Use letters, digits, spaces and punctuation other than {}."
            )
        if KEY_SHAPES.search(name):
            raise forms.ValidationError(
                "The name looks like a key. Names are shown to everyone: put the key in the "
                "Key box."
            )
        return name

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise forms.ValidationError(
                "Give a whole http or https address, e.g. http://localhost:11434/v1."
            )
        if parts.username or parts.password:
            raise forms.ValidationError(
                "Leave the user name and password out of the address: put a key in the Key box."
            )
        try:
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise forms.ValidationError("The port in the address is not a number.") from None
        return url.rstrip("/")

    def clean_default_model(self) -> str:
        model = self.cleaned_data["default_model"].strip()
        if any(ch.isspace() for ch in model) or not model.isprintable():
            raise forms.ValidationError("A model name has no spaces, e.g. llama3.2.")
        return model

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if not key:
            return ""
        if any(ch.isspace() for ch in key) or not (key.isascii() and key.isprintable()):
            raise forms.ValidationError(
                "The key has spaces, line breaks or characters keys never contain. Copy it "
                "again, all on one line."
            )
        if len(key) < MIN_SERVER_KEY_CHARS:
            raise forms.ValidationError(
                f"That key is {len(key)} characters long; a key needs at least "
                f"{MIN_SERVER_KEY_CHARS}, so it can be kept out of runs and logs."
            )
        if len(key) > MAX_KEY_CHARS:
            raise forms.ValidationError(
                f"That is too long to be a key (over {MAX_KEY_CHARS} characters)."
            )
        return key


class DefaultProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
