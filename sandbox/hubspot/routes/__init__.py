"""The HubSpot sandbox's HTTP face, one module per API area; http.py holds what every area shares
(bearer auth, rate-limit headers, error bodies, request parsing), server.py puts the areas together."""
