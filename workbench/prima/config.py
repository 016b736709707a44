"""Configuration of the PRIMA reproduction (small CPU defaults; the full-scale path is in the notebook)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (data, initialisation and minibatch order derive from it)"""
    n_seeds: int = 3
    """independent replications (seeds seed, seed+1, ...): each has its own data, initialisation and
    minibatch order; both variants of one seed share data and batches; metrics are mean +- SE over seeds"""
    # ---- data -------------------------------------------------------------------------------
    n_train: int = 768
    """number of generated training items"""
    n_test: int = 96
    """number of generated test items"""
    n_images: int = 2
    """images per item (the model and generator accept any count >= 2)"""
    image_size: int = 32
    """side of each square RGB image in pixels"""
    min_objects: int = 2
    """fewest objects per image"""
    max_objects: int = 4
    """most objects per image"""
    noise_std: float = 8.0
    """std of the Gaussian pixel noise added to the rendered images (uint8 scale)"""
    part_prob: float = 0.25
    """probability that a size-comparison question asks for a part (the top half) instead of the object"""
    # ---- model ------------------------------------------------------------------------------
    d_model: int = 48
    """width of every transformer in the small model"""
    n_heads: int = 4
    """attention heads"""
    patch: int = 8
    """patch size of the semantic (CLIP/DINOv2 stand-in) encoders: (image_size/patch)^2 tokens per image"""
    n_semantic_encoders: int = 2
    """semantic encoders per image fused by cross-attention (PRIMA: EVA-CLIP + DINOv2 -> 2)"""
    n_queries: int = 8
    """learnable queries of the instruction-aware cross-image query module"""
    query_layers: int = 2
    """layers of the query module (self-attn over [queries; instruction], cross-attn to all images)"""
    lm_layers: int = 2
    """layers of the small causal language decoder"""
    decoder_stride: int = 4
    """stride of the grounding (SAM-encoder stand-in) feature map the mask decoder reads"""
    max_answer_len: int = 40
    """longest generated answer in tokens"""
    variants: tuple = ("prima", "glamm")
    """which variants to train and evaluate: prima = query module, glamm = all image tokens to the LM"""
    # ---- training ---------------------------------------------------------------------------
    steps: int = 150
    """optimizer steps per variant"""
    batch_size: int = 16
    """items per minibatch"""
    lr: float = 6e-3
    """AdamW learning rate (cosine decay to 10%, 20 warm-up steps)"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    bce_weight: float = 2.0
    """weight of the per-pixel BCE mask loss (LISA uses 2.0)"""
    dice_weight: float = 0.5
    """weight of the DICE mask loss (LISA uses 0.5)"""
    text_weight: float = 1.0
    """weight of the answer-token cross-entropy"""
    eval_every: int = 25
    """learning curve: teacher-forced scores on ``n_curve`` test items every this many steps (0: off)"""
    n_curve: int = 48
    """test items of the learning curve (the first ones of the test set)"""
    ckpt_every: int = 0
    """save a checkpoint every this many steps (0: only at the end); needs out_dir"""
    torch_threads: int = 1
    """torch intra-op threads during run(), restored after (1: these small ops run fastest on one
    thread; two threads on a busy 2-core machine were 20x slower here; 0 leaves torch's setting)"""
    # ---- evaluation -------------------------------------------------------------------------
    mask_threshold: float = 0.0
    """logit threshold that turns predicted mask logits into binary masks"""
    iou_threshold: float = 0.5
    """IoU a matched mask needs to count toward Recall (GLaMM: 0.5)"""
    text_threshold: float = 0.5
    """phrase similarity a matched mask needs to count toward Recall (GLaMM: 0.5)"""
    text_similarity: str = "word_iou"
    """reconstruction: phrase similarity for Recall, word-set IoU (GLaMM uses BERT cosine)"""
    throughput_batch: int = 16
    """batch size of the samples/s measurement (teacher-forced forward, inference mode)"""
    throughput_repeats: int = 3
    """timed repetitions of the samples/s measurement (best is kept)"""
    paper_timing: bool = True
    """also time one forward per variant of the paper-proportioned model scaled down by
    ``paper_timing_scale`` (the full model is counted on the meta device only: one forward takes
    ~40 CPU-seconds; ``benchmarks/prima_flops.py --full`` times it)"""
    paper_timing_scale: int = 4
    """scale-down of the timed paper-proportioned model: width, queries, text length / s, image tokens / s
    (image side / sqrt(s)), depth kept; its own FLOP reduction is reported beside its samples/s"""
    n_view: int = 24
    """test items whose images and masks are kept in the results for the viewer"""
    scaling_queries: tuple = (4, 8, 16, 32)
    """query counts of the FLOP-scaling sweep"""
    scaling_tokens: tuple = (16, 64, 256)
    """image-token counts (all images together) of the FLOP-scaling sweep"""
    out_dir: str = ""
    """where checkpoints go ('' = no checkpoint files)"""
    extra: dict = field(default_factory=dict)
    """free-form notes recorded with the run"""

    def __post_init__(self):
        if self.paper_timing_scale not in (1, 4):
            raise ValueError(f"paper_timing_scale must be 1 (full size, ~1 CPU-minute) or 4, got {self.paper_timing_scale}")
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")
        if self.n_images < 2:
            raise ValueError(f"n_images must be >= 2 for cross-image questions, got {self.n_images}")
        if self.image_size % self.patch or self.image_size % self.decoder_stride:
            raise ValueError("image_size must be divisible by patch and decoder_stride")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 to place several objects, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError("need 1 <= min_objects <= max_objects")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        bad = [v for v in self.variants if v not in ("prima", "glamm")]
        if bad:
            raise ValueError(f"unknown variants {bad}; choose from 'prima', 'glamm'")
        if self.text_similarity not in ("word_iou", "exact"):
            raise ValueError("text_similarity must be 'word_iou' or 'exact'")
        self.variants = tuple(self.variants)
