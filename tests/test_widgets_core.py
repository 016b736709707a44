from widgets.llm_view import completion_list


def test_completion_list_from_plain_rows():
    rows = [dict(prompt="p1", text="t1 <b>", prompt_tokens=3, completion_tokens=2, latency_s=0.1, finish_reason="stop"),
            dict(prompt="p2", text="t2", prompt_tokens=4, completion_tokens=5, latency_s=0.2, finish_reason="length")]
    w = completion_list(rows)
    assert "&lt;b&gt;" in w.children[0].value  # escaped
    assert "t1" in w.detail.value
    w.pick.value = 1
    assert "t2" in w.detail.value and "5 tokens, length" in w.detail.value
    assert completion_list([]).detail.value == "<i>no completions</i>"
