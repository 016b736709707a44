"""The LLM layer: one batched protocol, backends by spec string, the embedded default model, a cache.

>>> from workbench.llm import load_llm, SamplingParams
>>> llm = load_llm("scripted", responses=["4"], cache="off")
>>> [c.text for c in llm.generate(["What is 2+2?"], SamplingParams(max_tokens=8))]
['4']
"""
from .base import (LLM, VISION_BACKENDS, BackendOptionError, Chat, Completion, ImageInputError, LLMError,
                   MalformedResponseError, MissingExtraError, ModelNotFoundError, Prompt, SamplingParams,
                   ServerUnreachableError, UnknownBackendError, Usage, apply_stop, as_chat, decode_image_part,
                   has_image, image_part, prompt_images, text_part)
from .cache import ResponseCache
from .registry import BACKENDS, load_llm, parse_spec
from .scripted import ScriptedLLM, prompt_text
from .structure import (Choice, Grammar, JsonSchema, ReasonThenAnswer, Regex, Structure, StructureViolationError,
                        reason_then_answer)
from .base import StructureUnsupportedError

__all__ = ["LLM", "VISION_BACKENDS", "BackendOptionError", "Chat", "Completion", "ImageInputError", "LLMError",
           "MalformedResponseError", "decode_image_part", "has_image", "image_part", "prompt_images", "text_part",
           "MissingExtraError", "ModelNotFoundError", "Prompt", "SamplingParams", "ServerUnreachableError",
           "UnknownBackendError", "Usage", "apply_stop", "as_chat", "ResponseCache", "BACKENDS", "load_llm",
           "parse_spec", "ScriptedLLM", "prompt_text", "Structure", "Regex", "JsonSchema", "Choice", "Grammar",
           "ReasonThenAnswer", "reason_then_answer", "StructureViolationError", "StructureUnsupportedError"]
