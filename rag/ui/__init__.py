"""The Streamlit app's importable parts (``ui/app.py`` only lays out the page and calls these).

Framework-free, one job each, tested without a browser:

* :mod:`rag.ui.text`: untrusted text as inert Markdown (:func:`~rag.ui.text.md`, :func:`~rag.ui.text.code`);
* :mod:`rag.ui.uploads`: upload names and bytes made safe, saved without clobbering;
* :mod:`rag.ui.settings`: the sidebar's settings, their defaults and the pipeline config they make;
* :mod:`rag.ui.models`: which chat models are on this machine, and how to get the others;
* :mod:`rag.ui.sources`: an answer's sources grouped by document, relevance cues, labels;
* :mod:`rag.ui.answers`: an answer's text with doubtful sentences marked, and its warnings;
* :mod:`rag.ui.viewer`: a cited passage on its PDF page, or in its document;
* :mod:`rag.ui.examples`: starter questions from a collection's own headings;
* :mod:`rag.ui.trace`: an answer's trace and timings as readable steps.

Streamlit parts shared by the page: :mod:`rag.ui.access` (the access gate), :mod:`rag.ui.resources`
(models and indexes cached per server process), :mod:`rag.ui.sidebar` (the settings widgets) and
:mod:`rag.ui.answer_view` (one answer, its sources and trace). Whether an address is reachable only
from this machine: :func:`rag.net.is_loopback`.
"""
