"""How many tokens a text is, estimated from its characters without a tokenizer.

Byte-pair tokenizers give English text 4 to 5 characters a token, but other scripts far
fewer: measured with OpenAI's cl100k_base and o200k_base encodings, a Chinese or
Japanese character is 0.7 to 1.2 tokens, Korean, Hindi, Thai and Greek 0.3 to 1.1,
Cyrillic and Arabic 0.3 to 0.9, and an emoji 1.4 to 2.8. So ASCII counts 4
characters a token, every other character 1 token, and one outside the Basic
Multilingual Plane (emoji, rare ideographs) 2. On those measurements the estimate is
within 0.8 to 1.5 times the real count for CJK text, and errs high (up to about 3 times)
for the alphabets that newer encodings pack tightly: budgets reserve a call's worst case,
so an estimate may be high but must not be low.

A real tokenizer is not used: each provider has its own, and the usual library
(tiktoken) downloads its encodings at run time.
"""

import math

ASCII_CHARS_PER_TOKEN = 4


def token_estimate(text: str) -> int:
    """The estimated tokens of `text` (0 for an empty one)."""
    if text.isascii():
        return math.ceil(len(text) / ASCII_CHARS_PER_TOKEN)
    ascii_chars = len(text.encode("ascii", "ignore"))
    # Characters outside the BMP take two UTF-16 code units (a surrogate pair).
    astral = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    return math.ceil(ascii_chars / ASCII_CHARS_PER_TOKEN) + (len(text) - ascii_chars) + astral
