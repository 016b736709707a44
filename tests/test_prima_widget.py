"""The PRIMA mask viewer: plain data in, controls only index into it."""
import numpy as np

from workbench.prima.data import mask_to_rle
from widgets.prima import answer_html, decode_item, filter_items, mask_viewer

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _item(i, cat, giou, correct):
    m = np.zeros((4, 4), bool); m[:2, :2] = True
    return {"id": f"t{i}", "category": cat, "question": "q?", "answer": "in image 1 the red circle [SEG] .",
            "images": [PNG, PNG], "image_size": [4, 4],
            "true": [{"image": 0, "label": "red circle", "level": "object", "mask": mask_to_rle(m)}],
            "pred": {"prima": {"answer": "in image 2 the red circle [SEG] .", "phrases": ["red circle"],
                               "masks": [[mask_to_rle(np.zeros((4, 4), bool)), mask_to_rle(m)]],
                               "ious": [giou], "miou": giou, "giou": giou, "answer_correct": correct}}}


ITEMS = [_item(0, "spatial", 0.9, True), _item(1, "numerical", 0.1, False), _item(2, "spatial", 0.5, False)]


def test_decode_and_filter():
    d = decode_item(ITEMS[0])
    assert d["true"].shape == (1, 2, 4, 4) and d["true"][0, 0].sum() == 4 and not d["true"][0, 1].any()
    assert d["pred"]["prima"][0, 1].sum() == 4
    assert filter_items(ITEMS, "spatial") == [0, 2]
    assert filter_items(ITEMS, "all", "worst gIoU first", "prima") == [1, 2, 0]
    assert filter_items(ITEMS, "all", "wrong answers only", "prima") == [1, 2]
    assert "[SEG 1] IoU 0.50" in answer_html("a [SEG] b", [0.5])


def test_viewer_controls_update_overlays():
    box = mask_viewer(ITEMS)
    fig, c = box.fig, box.controls
    assert len(fig.data) == 6  # image, true, predicted per image
    assert np.asarray(fig.data[1].z).sum() == 4 and np.asarray(fig.data[5].z).sum() == 4
    c["show"].value = "true"
    assert fig.data[1].visible and not fig.data[2].visible
    c["opacity"].value = 0.2
    assert fig.data[1].opacity == 0.2
    c["order"].value = "worst gIoU first"
    assert c["item"].value == 1 and "gIoU 0.100" in box.info.value
    c["category"].value = "numerical"
    assert [v for _, v in c["item"].options] == [1]
