"""Who may see the app: anyone on this machine when it listens on loopback, else only a session with the token.

On an address other machines can reach, the app serves nothing unless ``RAG_ACCESS_TOKEN`` is set
(at least :data:`MIN_TOKEN_CHARS` characters), and then only to a session that typed it (compared
in constant time, a wrong guess slowed down). Streamlit drawing; the address test is
:func:`rag.net.is_loopback`.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

import streamlit as st

from rag.net import MIN_SECRET_CHARS, is_loopback, secret_problem
from rag.ui.text import md

logger = logging.getLogger("rag.app")

TOKEN_ENV = "RAG_ACCESS_TOKEN"
MIN_TOKEN_CHARS = MIN_SECRET_CHARS


def access_granted() -> bool:
    """Gate the whole app; False when this session must see nothing but the refusal or the token form."""
    address = st.get_option("server.address")
    token = os.environ.get(TOKEN_ENV, "")
    where = f"“{address}”" if address else "every network interface"
    if not token:
        if is_loopback(address):
            return True
        logger.error("refusing to serve on %s without an access token: set %s or bind 127.0.0.1",
                     address or "0.0.0.0", TOKEN_ENV)
        st.title("Not serving: no access token")
        st.error(f"This app is listening on {md(where)}, which other machines can reach, and no access token "
                 f"is set, so it serves nothing. Run it on this machine only (`make run` binds 127.0.0.1), or "
                 f"set `{TOKEN_ENV}` to a long random secret (at least {MIN_TOKEN_CHARS} characters) and "
                 "restart it to require that token.")
        return False
    problem = secret_problem(token, TOKEN_ENV)
    if problem is not None:
        logger.error("refusing to serve: %s", problem)
        st.title("Not serving: access token too short" if len(token.strip()) < MIN_TOKEN_CHARS
                 else "Not serving: access token has surrounding whitespace")
        st.error(f"{problem}, and restart the app.")
        return False
    ss = st.session_state
    if ss.get("access_granted"):
        return True
    st.title("Ask your documents")
    with st.form("access_form"):
        entered = st.text_input("Access token", type="password", key="access_token")
        submitted = st.form_submit_button("Open")
    if submitted:
        if hmac.compare_digest(entered.encode("utf-8"), token.encode("utf-8")):
            ss["access_granted"] = True
            st.rerun()
        time.sleep(1.0)  # slow down guessing
        st.error("Wrong access token.")
    return False
