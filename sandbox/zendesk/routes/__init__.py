"""The Zendesk sandbox's HTTP face, one module per API area; http.py holds what every area shares
(auth, rate limits, error bodies, request parsing, pagination), server.py puts the areas together."""
