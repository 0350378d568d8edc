"""The Freshdesk sandbox's HTTP face, one module per API area; http.py holds what every area shares
(auth, rate-limit credits, error bodies, request parsing, page/per_page lists), server.py puts the areas
together."""
