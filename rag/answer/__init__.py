"""Answer stage: the Answerer (retrieve -> gate -> prompt -> generate -> check), its strategies, citation checks, traces, chat sessions."""
