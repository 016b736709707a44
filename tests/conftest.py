import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded model (converted once into the user cache), no response cache."""
    from workbench.llm import load_llm

    return load_llm("default", cache="off")


@pytest.fixture(scope="session")
def embedded_onnx():
    """The embedded model on onnxruntime-genai (``onnx``), no response cache."""
    from workbench.llm import load_llm

    return load_llm("onnx", cache="off")


@pytest.fixture(scope="session")
def embedded_transformers():
    """The embedded model on the transformers engine (our PyTorch loop), no response cache: the
    reference for the default onnx engine and the model that training and logit checks need."""
    from workbench.llm import load_llm

    return load_llm("transformers", cache="off")


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored after: the models under test are tiny, and on a shared
    CPU torch's extra worker threads only add contention (many-fold slowdowns seen here)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
