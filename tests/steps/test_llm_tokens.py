"""Token estimates for prompts in any script, against counts from real tokenizers.

The real counts below were measured with OpenAI's o200k_base (GPT-4o, GPT-5, o-series) and
cl100k_base (GPT-4, GPT-3.5) encodings, as bundled in the npm package gpt-tokenizer 4.0.0;
they are facts about these exact strings, not outputs of the code under test.
"""

import pytest

from vectorbea.budgets import estimates
from vectorbea.budgets.guard import PROMPT_OVERHEAD_TOKENS, estimated_tokens

# text: (o200k_base tokens, cl100k_base tokens)
CJK = {
    "请用两句话总结以下客户投诉，并说明应由哪个部门处理。包裹晚到了三天，而且箱子已经损坏。"
    "客户要求退款并希望得到道歉。": (39, 64),
    "次の顧客の苦情を二文で要約し、どの部署が対応すべきかを述べてください。"
    "荷物は三日遅れで届き、箱が破損していました。": (51, 66),
    "다음 고객 불만을 두 문장으로 요약하고 어느 부서가 처리해야 하는지 말해 주세요. "
    "소포가 사흘 늦게 도착했고 상자가 파손되었습니다.": (43, 71),
}
OTHER_SCRIPTS = {
    "Кратко изложите следующую жалобу клиента в двух предложениях и укажите, какой отдел "
    "должен ею заняться. Посылка пришла на три дня позже, коробка была повреждена.": (44, 70),
    "निम्नलिखित ग्राहक शिकायत को दो वाक्यों में सारांशित करें और बताएं कि किस विभाग को इसे "
    "संभालना चाहिए। पार्सल तीन दिन देर से पहुंचा और डिब्बा क्षतिग्रस्त था।": (52, 146),
    "สรุปคำร้องเรียนของลูกค้าต่อไปนี้ในสองประโยคและบอกว่าแผนกใดควรจัดการ "
    "พัสดุมาถึงช้าไปสามวันและกล่องได้รับความเสียหาย": (51, 106),
    "🎉🎉🎉 Great job team! 🚀🚀 Let's ship it 👍👍👍": (20, 31),
}


def token_estimate(text: str) -> int:
    """What a call reserves for `text`, without the message framing."""
    return estimated_tokens(text) - PROMPT_OVERHEAD_TOKENS


ENGLISH = (
    "Summarise the following customer complaint in two sentences and say which department "
    "should handle it. The parcel arrived three days late and the box was damaged."
)  # 30 tokens in both encodings


@pytest.mark.parametrize("text", CJK, ids=["chinese", "japanese", "korean"])
def test_a_cjk_prompt_is_estimated_near_its_real_token_count(text):
    estimate = token_estimate(text)
    for real in CJK[text]:
        assert 0.75 * real <= estimate <= 2 * real, (estimate, CJK[text])


@pytest.mark.parametrize("text", OTHER_SCRIPTS, ids=["russian", "hindi", "thai", "emoji"])
def test_other_scripts_are_never_estimated_far_below_their_real_count(text):
    estimate = token_estimate(text)
    for real in OTHER_SCRIPTS[text]:
        assert 0.75 * real <= estimate <= 3.5 * real, (estimate, OTHER_SCRIPTS[text])


def test_english_is_still_four_characters_a_token():
    assert token_estimate(ENGLISH) == -(-len(ENGLISH) // 4) == 41
    assert token_estimate("") == 0


def test_a_runs_cost_estimate_counts_a_long_cjk_prompt_at_no_less_than_its_real_size():
    [text] = [t for t in CJK if t.startswith("请")]
    long_prompt = text * 20  # 1,140 characters: 780 tokens (o200k_base), 1,280 (cl100k_base)
    # The estimate adds 25 % and 256 tokens for framing and template values.
    assert estimates.input_tokens({"prompt": long_prompt}) >= 1280
    assert estimates.input_tokens({"prompt": long_prompt}) == (
        -(-token_estimate(long_prompt) * 5 // 4) + 256
    )
