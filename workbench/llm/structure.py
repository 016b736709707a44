"""Structured outputs: what a completion must look like, as one small frozen value per kind.

Put one in ``SamplingParams(structure=...)`` and every backend constrains decoding to it:

- :class:`Regex` ``(pattern)``: the whole completion matches the regular expression (full match).
  Use the subset every engine reads (literals, classes, groups, alternation, quantifiers,
  ``{m,n}``); lookaround, backreferences and word boundaries are refused at construction.
- :class:`JsonSchema` ``(schema)``: the completion is one JSON value valid under the schema.
- :class:`Choice` ``(options)``: the completion is exactly one of the options.
- :class:`Grammar` ``(ebnf)``: a context-free grammar in xgrammar's EBNF (GBNF style, the start rule
  is ``root``), as vLLM's ``grammar`` field takes it.
- :class:`ReasonThenAnswer` (helper :func:`reason_then_answer`): free text of bounded length, then
  ``<answer>`` + a constrained answer + ``</answer>``, so a model may think before it commits.

How each backend enforces it:

- ``transformers:`` / ``default``: xgrammar inside our own batched decode loop (one matcher per row,
  token bitmask on the logits before sampling; each (tokenizer, structure) compiled once).
- ``vllm:``: vLLM's ``StructuredOutputsParams`` (``regex=``, ``json=``, ``choice=``, ``grammar=``), see
  :meth:`Structure.vllm_fields`.
- ``openai:``: ``response_format={"type": "json_schema", ...}`` for a JSON schema; ``structured_outputs``
  (vLLM server extra body field) for the other kinds.
- ``scripted``: each scripted text is checked with :meth:`Structure.check` and a mismatch raises.

Choices made here (reconstruction; the papers are silent):

- Bounding the reasoning of :class:`ReasonThenAnswer` by *characters* (``max_reasoning_chars``), not
  tokens: a character bound is a plain regex (``[^<]{0,N}``) that every engine (xgrammar, vLLM,
  an OpenAI-compatible vLLM server) enforces identically, whereas a token count depends on the
  tokenizer and cannot be written in a grammar. Rule of thumb: ~4 characters per token for English,
  so ``max_tokens`` should exceed ``max_reasoning_chars / 3`` plus the answer's length.
- The reasoning may not contain the first character of the ``open`` tag (``<`` by default), which
  makes the split between reasoning and answer unambiguous; pick an ``open`` tag whose first
  character the reasoning does not need.
- JSON is written without free whitespace in our decode loop (xgrammar ``any_whitespace=False``:
  ``{"a": 1, "b": [2, 3]}``), so a small model cannot spin on whitespace until ``max_tokens``.

>>> from workbench.llm import SamplingParams
>>> SamplingParams(max_tokens=8, structure=Choice(("yes", "no"))).structure.to_key()
{'kind': 'choice', 'options': ['yes', 'no']}
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from .base import LLMError, MissingExtraError


class StructureViolationError(LLMError, ValueError):
    """A text does not satisfy the structure it was produced under (e.g. a scripted response)."""


def _xgrammar(required_for: str = ""):
    """The xgrammar module, or None when it is not installed (raises if ``required_for`` is given)."""
    try:
        import xgrammar
    except ImportError:
        if required_for:
            raise MissingExtraError("xgrammar", "hf", required_for) from None
        return None
    return xgrammar


def _first_line(e: BaseException) -> str:
    """xgrammar errors carry a '[time] file.cc:line: ' prefix: keep the message."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", msg)


def regex_escape(s: str) -> str:
    """A regex matching exactly ``s``, escaping only the characters special in every engine (Python's
    ``re.escape`` also escapes spaces, ``#``, ``&``, ``~``..., which not every regex engine reads).

    >>> regex_escape("a+b (c) <x>")
    'a\\\\+b \\\\(c\\\\) <x>'
    >>> import re; bool(re.fullmatch(regex_escape("1.5 * [x]?"), "1.5 * [x]?"))
    True
    """
    out = []
    for ch in s:
        if ch in "\\.^$|?*+()[]{}":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(ch)
    return "".join(out)


def ebnf_literal(s: str) -> str:
    """``s`` as an EBNF string literal (JSON escapes, which xgrammar and GBNF read).

    >>> ebnf_literal('say "hi"')
    '"say \\\\"hi\\\\""'
    """
    return json.dumps(s, ensure_ascii=False)


@lru_cache(maxsize=1)
def _text_compiler():
    """A grammar compiler over an empty vocabulary: enough to run a matcher over a string."""
    xgr = _xgrammar("checking a text against a grammar")
    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), max_threads=1)


@lru_cache(maxsize=256)
def _compiled_for_text(structure: "Structure"):
    return _text_compiler().compile_grammar(structure.xgrammar())


def xgrammar_accepts(structure: "Structure", text: str) -> bool:
    """Whether xgrammar's matcher accepts the whole ``text`` as a complete string of ``structure``."""
    xgr = _xgrammar("checking a text against a grammar")
    m = xgr.GrammarMatcher(_compiled_for_text(structure))
    return bool(m.accept_string(text)) and bool(m.is_completed())


class Structure:
    """Base of the structure kinds. Subclasses are frozen (hashable) dataclasses."""

    kind: ClassVar[str] = ""

    def to_key(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict naming the kind and its content (cache keys, logs)."""
        raise NotImplementedError

    def regex(self) -> str | None:
        """A regex (full match) expressing the structure, where one exists (None otherwise)."""
        return None

    def xgrammar(self):
        """The structure as an ``xgrammar.Grammar`` (our decode loop and text checks)."""
        raise NotImplementedError

    def to_ebnf(self) -> str:
        """The structure as EBNF (start rule ``root``), as xgrammar prints it."""
        return str(self.xgrammar())

    def vllm_fields(self) -> dict[str, Any]:
        """Keyword arguments of vLLM's ``StructuredOutputsParams`` (also the server's ``structured_outputs``)."""
        raise NotImplementedError

    def matches(self, text: str) -> bool:
        """Whether ``text`` is a complete string of this structure."""
        raise NotImplementedError

    def check(self, text: str, what: str = "text") -> None:
        """Raise :class:`StructureViolationError` if ``text`` does not satisfy the structure."""
        if not self.matches(text):
            raise StructureViolationError(
                f"{what} {text[:200]!r} does not satisfy the structure {self.describe()}; a model decoding "
                "under this structure could never produce it")

    def describe(self) -> str:
        s = json.dumps(self.to_key(), ensure_ascii=False)
        return s if len(s) <= 300 else s[:297] + "..."


# ---------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Regex(Structure):
    """The completion fully matches ``pattern``.

    >>> r = Regex(r"[0-9]{1,3}")
    >>> r.matches("42"), r.matches("42!")
    (True, False)
    >>> Regex("(unclosed")
    Traceback (most recent call last):
    ...
    ValueError: invalid regex '(unclosed': missing ), unterminated subpattern at position 0
    """

    pattern: str
    kind: ClassVar[str] = "regex"

    def __post_init__(self):
        if not isinstance(self.pattern, str):
            raise TypeError(f"Regex takes a pattern string, got {type(self.pattern).__name__}")
        if not self.pattern:
            raise ValueError("Regex pattern is empty: it would only allow an empty completion")
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"invalid regex {self.pattern!r}: {e}") from None
        xgr = _xgrammar()
        if xgr is not None:
            try:
                xgr.Grammar.from_regex(self.pattern)
            except Exception as e:  # xgrammar raises RuntimeError with the parser's message
                raise ValueError(f"regex {self.pattern!r} is not supported by constrained decoding (xgrammar): "
                                 f"{_first_line(e)}. Use literals, classes, groups, alternation and "
                                 "quantifiers only") from None

    def to_key(self):
        return {"kind": self.kind, "pattern": self.pattern}

    def regex(self):
        return self.pattern

    def xgrammar(self):
        return _xgrammar("Regex structures").Grammar.from_regex(self.pattern)

    def vllm_fields(self):
        return {"regex": self.pattern}

    def matches(self, text):
        return re.fullmatch(self.pattern, text) is not None


@dataclass(frozen=True)
class Choice(Structure):
    """The completion is exactly one of ``options``.

    >>> c = Choice(["A", "B", "C"])
    >>> c.options, c.matches("B"), c.matches("D")
    (('A', 'B', 'C'), True, False)
    >>> Choice([])
    Traceback (most recent call last):
    ...
    ValueError: Choice needs at least one option, got none
    """

    options: tuple[str, ...]
    kind: ClassVar[str] = "choice"

    def __post_init__(self):
        opts = self.options
        if isinstance(opts, str):
            raise TypeError(f"Choice takes a sequence of strings, got the string {opts!r}; "
                            f"write Choice([{opts!r}])")
        opts = tuple(opts)
        if not opts:
            raise ValueError("Choice needs at least one option, got none")
        for o in opts:
            if not isinstance(o, str):
                raise TypeError(f"Choice options must be strings, got {o!r}")
            if not o:
                raise ValueError("Choice options must be non-empty strings (an empty option ends the "
                                 "completion at once)")
        dup = sorted({o for o in opts if opts.count(o) > 1})
        if dup:
            raise ValueError(f"Choice options repeat: {dup}")
        object.__setattr__(self, "options", opts)

    def to_key(self):
        return {"kind": self.kind, "options": list(self.options)}

    def regex(self):
        return "(?:" + "|".join(regex_escape(o) for o in self.options) + ")"

    def xgrammar(self):
        return _xgrammar("Choice structures").Grammar.from_ebnf(self.to_ebnf())

    def to_ebnf(self):
        return "root ::= " + " | ".join(ebnf_literal(o) for o in self.options)

    def vllm_fields(self):
        return {"choice": list(self.options)}

    def matches(self, text):
        return text in self.options


def _check_schema(schema: dict) -> None:
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ValueError(f"invalid JSON schema at {where}: {e.message}") from None
    xgr = _xgrammar()
    if xgr is not None:
        try:
            xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
        except Exception as e:
            raise ValueError(f"JSON schema not supported by constrained decoding (xgrammar): {_first_line(e)}") from None


@dataclass(frozen=True, init=False)
class JsonSchema(Structure):
    """The completion is one JSON value valid under ``schema`` (a dict, or its JSON text).

    Stored canonically (sorted keys, compact) in ``canonical``, so equal schemas give equal, hashable
    values and equal cache keys; ``.schema`` gives the dict back. xgrammar's JSON mode is strict:
    an object takes no properties beyond those listed unless ``additionalProperties`` says so.

    >>> js = JsonSchema({"type": "object", "properties": {"c": {"type": "integer", "minimum": 0,
    ...                  "maximum": 100}}, "required": ["c"]})
    >>> js.matches('{"c": 42}'), js.matches('{"c": 420}'), js.matches('{"c": ')
    (True, False, False)
    >>> js == JsonSchema(js.schema), hash(js) == hash(JsonSchema(js.canonical))
    (True, True)
    >>> JsonSchema({"type": "integer", "minimum": "zero"})
    Traceback (most recent call last):
    ...
    ValueError: invalid JSON schema at minimum: 'zero' is not of type 'number'
    """

    canonical: str
    kind: ClassVar[str] = "json"

    def __init__(self, schema: dict | str):
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as e:
                raise ValueError(f"JsonSchema got a string that is not JSON: {e}") from None
        if isinstance(schema, type) and hasattr(schema, "model_json_schema"):  # a pydantic model class
            schema = schema.model_json_schema()
        if not isinstance(schema, dict):
            raise TypeError(f"JsonSchema takes a dict (or its JSON text), got {type(schema).__name__}")
        _check_schema(schema)
        object.__setattr__(self, "canonical", json.dumps(schema, sort_keys=True, separators=(",", ":"),
                                                         ensure_ascii=False))

    @property
    def schema(self) -> dict:
        return json.loads(self.canonical)

    def __repr__(self):
        return f"JsonSchema({self.schema!r})"

    def to_key(self):
        return {"kind": self.kind, "schema": self.canonical}

    def xgrammar(self):
        return _xgrammar("JsonSchema structures").Grammar.from_json_schema(self.canonical, any_whitespace=False)

    def vllm_fields(self):
        return {"json": self.schema}

    def matches(self, text):
        try:
            value = json.loads(text)
        except ValueError:
            return False
        try:
            import jsonschema
        except ImportError:  # no jsonschema: xgrammar's matcher over the text decides
            return xgrammar_accepts(self, text)
        return jsonschema.validators.validator_for(self.schema)(self.schema).is_valid(value)


@dataclass(frozen=True)
class Grammar(Structure):
    """The completion is a string of the EBNF grammar ``ebnf`` (xgrammar / GBNF syntax, start rule ``root``).

    Cost: prefer ``*``, ``+`` and recursion to bounded repetitions ``{m,n}``. xgrammar 0.2.9 keeps the
    repeat count in its parser state, and its per-token mask cost grows with each repetition (measured on
    the embedded model: ``word (" " word){150,200}`` with ``word ::= [a-z]{1,10}`` ~4 ms per token after
    one word, ~50 ms after 60; with ``word ::= [a-z]+`` 0.03 -> 0.15 ms; the same list written with ``*``,
    or with the repetitions written out as a sequence of rules, ~0.01 ms; ``benchmarks/llm_structured.py``).

    >>> g = Grammar('root ::= "(" digit+ ")"\\ndigit ::= [0-9]')
    >>> g.matches("(12)"), g.matches("(12")
    (True, False)
    """

    ebnf: str
    kind: ClassVar[str] = "grammar"

    def __post_init__(self):
        if not isinstance(self.ebnf, str) or not self.ebnf.strip():
            raise ValueError("Grammar takes a non-empty EBNF string (with a 'root ::= ...' rule)")
        xgr = _xgrammar("Grammar structures (to parse the EBNF)")
        try:
            xgr.Grammar.from_ebnf(self.ebnf)
        except Exception as e:
            raise ValueError(f"invalid EBNF grammar: {_first_line(e)}") from None

    def to_key(self):
        return {"kind": self.kind, "ebnf": self.ebnf}

    def xgrammar(self):
        return _xgrammar("Grammar structures").Grammar.from_ebnf(self.ebnf)

    def to_ebnf(self):
        return self.ebnf

    def vllm_fields(self):
        return {"grammar": self.ebnf}

    def matches(self, text):
        return xgrammar_accepts(self, text)


@dataclass(frozen=True)
class ReasonThenAnswer(Structure):
    """Up to ``max_reasoning_chars`` characters of free text (without ``open[0]``), then ``open`` +
    a completion of ``answer`` + ``close``. Build it with :func:`reason_then_answer`.

    >>> rta = reason_then_answer(Regex(r"-?[0-9]+"), max_reasoning_chars=200)
    >>> rta.matches("3 plus 4 is 7. <answer>7</answer>"), rta.answer_of("so <answer>7</answer>")
    (True, '7')
    >>> rta.matches("<answer>seven</answer>"), rta.answer_of("no tag")
    (False, None)
    >>> rta.regex()
    '[^<]{0,200}<answer>(?:-?[0-9]+)</answer>'
    """

    answer: Structure
    max_reasoning_chars: int = 600
    open: str = "<answer>"
    close: str = "</answer>"
    kind: ClassVar[str] = "reason_then_answer"

    def __post_init__(self):
        if not isinstance(self.answer, Structure) or isinstance(self.answer, ReasonThenAnswer):
            raise TypeError(f"the answer must be a Regex, Choice, JsonSchema or Grammar, got {self.answer!r:.200}")
        if not isinstance(self.max_reasoning_chars, int) or self.max_reasoning_chars < 0:
            raise ValueError(f"max_reasoning_chars must be an int >= 0, got {self.max_reasoning_chars!r}")
        if not isinstance(self.open, str) or not self.open or not isinstance(self.close, str) or not self.close:
            raise ValueError("open and close tags must be non-empty strings")

    def _reason_regex(self) -> str:
        c = self.open[0]
        cls = "\\" + c if c in "\\]^-[" else ("\\n" if c == "\n" else c)
        return f"[^{cls}]{{0,{self.max_reasoning_chars}}}"

    def to_key(self):
        return {"kind": self.kind, "answer": self.answer.to_key(), "max_reasoning_chars": self.max_reasoning_chars,
                "open": self.open, "close": self.close}

    def regex(self):
        a = self.answer.regex()
        if a is None:
            return None
        return f"{self._reason_regex()}{regex_escape(self.open)}(?:{a}){regex_escape(self.close)}"

    def xgrammar(self):
        xgr = _xgrammar("ReasonThenAnswer structures")
        r = self.regex()
        if r is not None:
            return xgr.Grammar.from_regex(r)
        return xgr.Grammar.concat(xgr.Grammar.from_regex(self._reason_regex() + regex_escape(self.open)),
                                  self.answer.xgrammar(), xgr.Grammar.from_regex(regex_escape(self.close)))

    def vllm_fields(self):
        r = self.regex()
        return {"regex": r} if r is not None else {"grammar": self.to_ebnf()}

    def answer_of(self, text: str) -> str | None:
        """The answer part of a complete ``text`` (between the tags), or None if ``text`` does not match."""
        i = text.find(self.open[0])
        if i < 0 or i > self.max_reasoning_chars or not text.startswith(self.open, i) or not text.endswith(self.close):
            return None
        start, end = i + len(self.open), len(text) - len(self.close)
        if end < start:
            return None
        ans = text[start:end]
        return ans if self.answer.matches(ans) else None

    def matches(self, text):
        return self.answer_of(text) is not None


def reason_then_answer(answer: Structure, max_reasoning_chars: int = 600, open: str = "<answer>",
                       close: str = "</answer>") -> ReasonThenAnswer:
    """Free reasoning of at most ``max_reasoning_chars`` characters, then ``open`` + ``answer`` + ``close``.

    >>> s = reason_then_answer(Choice(["A", "B"]), max_reasoning_chars=50)
    >>> s.matches("B fits best.<answer>B</answer>"), s.matches("x" * 51 + "<answer>B</answer>")
    (True, False)
    """
    return ReasonThenAnswer(answer, max_reasoning_chars, open, close)


STRUCTURES = (Regex, Choice, JsonSchema, Grammar, ReasonThenAnswer)


def check_enforced(structure: Structure | None, text: str, finish_reason: str, stop, where: str) -> None:
    """For engines that enforce the structure themselves (vLLM, servers): a completion that ended on its
    own (``finish_reason="stop"``, no stop strings in play) must satisfy the structure; if it does not,
    the engine ignored the request, and :class:`~workbench.llm.base.StructureUnsupportedError` says so
    rather than passing the text on as valid. (A grammar needs xgrammar to check; without it, no check.)"""
    from .base import StructureUnsupportedError

    if structure is None or finish_reason != "stop" or stop:
        return
    try:
        ok = structure.matches(text)
    except MissingExtraError:
        return
    if not ok:
        raise StructureUnsupportedError(
            f"{where} returned a finished completion that does not satisfy the requested structure "
            f"{structure.describe()}: {text[:200]!r}. The engine or server ignored the structured-output "
            "request: use one that supports it (vLLM >= 0.12 for regex/choice/grammar; an OpenAI-style "
            "json_schema response_format for JSON schemas), or decode on the transformers backend")


# ------------------------------------------------------------------------- OpenAI-compatible servers
OPENAI_SCHEMA_NAME = "structure"


def openai_fields(structure: Structure) -> dict[str, Any]:
    """Request-body fields for an OpenAI-compatible server: a JSON schema as OpenAI's
    ``response_format`` (``{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}``,
    which vLLM servers also read); the other kinds as vLLM's ``structured_outputs`` extra field
    (``{"regex": ...}``, ``{"choice": [...]}``, ``{"grammar": ...}``).

    >>> openai_fields(Choice(["A", "B"]))
    {'structured_outputs': {'choice': ['A', 'B']}}
    >>> openai_fields(JsonSchema({"type": "integer"}))["response_format"]["json_schema"]["schema"]
    {'type': 'integer'}
    """
    if isinstance(structure, JsonSchema):
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": OPENAI_SCHEMA_NAME, "schema": structure.schema,
                                                    "strict": True}}}
    return {"structured_outputs": structure.vllm_fields()}


_REFUSAL_WORDS = ("structured", "response_format", "json_schema", "schema", "grammar", "regex", "choice",
                  "guided", "xgrammar", "guidance", "extra_forbidden", "extra inputs", "unrecognized",
                  "not permitted", "unsupported")


def structure_refusal(error: BaseException, structure: Structure | None, where: str):
    """The :class:`~workbench.llm.base.StructureUnsupportedError` to raise when a server answered a
    structured request with an HTTP 4xx that speaks of the structure (None when unrelated)."""
    from .base import StructureUnsupportedError

    msg = str(error)
    if structure is None or not re.search(r"answered HTTP 4\d\d", msg):  # the 4xx path of _post
        return None
    if not any(w in msg.lower() for w in _REFUSAL_WORDS):
        return None
    sent = ", ".join(openai_fields(structure))
    return StructureUnsupportedError(
        f"{where} refused the structured-output request (sent: {sent} for {structure.kind}): {msg[:400]}. "
        "This server does not take that field: regex, choice and grammar need a vLLM server "
        "(>= 0.12, 'structured_outputs'); JSON schemas need OpenAI-style response_format json_schema support. "
        "Otherwise decode on the transformers or vllm backend")
