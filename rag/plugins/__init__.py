"""Plugins: routers and query rewriters, selected by name (entry points ``rag.routers`` / ``rag.rewriters``).

The plugin API (protocols, records, discovery) lives in :mod:`rag.plugins.base` and is re-exported
here, so a plugin package writes ``from rag.plugins import PluginContext, Rewrite, SearchQuery``.
Built-ins: :mod:`rag.plugins.routers`, :mod:`rag.plugins.rewriters`.
"""

from rag.plugins.base import (ACTIONS, BUILTIN_REWRITERS, BUILTIN_ROUTERS, REWRITER_GROUP, ROUTER_GROUP,
                              PluginContext, QueryRewriter, Rewrite, RewriteMethod, Route, RouteAction, Router,
                              SearchQuery,
                              available_rewriters, available_routers, make_rewriter, make_router, plugin_name)

__all__ = ["ACTIONS", "BUILTIN_REWRITERS", "BUILTIN_ROUTERS", "REWRITER_GROUP", "ROUTER_GROUP", "PluginContext",
           "QueryRewriter", "Rewrite", "RewriteMethod", "Route", "RouteAction", "Router", "SearchQuery", "available_rewriters", "available_routers",
           "make_rewriter", "make_router", "plugin_name"]
