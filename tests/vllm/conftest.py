"""The search tests' real small models, shared with the vLLM tests."""

from tests.test_search import pair, smollm  # noqa: F401
