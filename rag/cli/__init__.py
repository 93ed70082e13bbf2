"""The ``rag`` command line: one module per command group (:mod:`rag.cli.index`, :mod:`rag.cli.search`,
:mod:`rag.cli.answer`, :mod:`rag.cli.models`, :mod:`rag.cli.reranker`), shared argument groups and
validators (:mod:`rag.cli.common`), and :func:`rag.cli.main.main`, the one place that maps errors to exit codes."""
