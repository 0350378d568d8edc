"""A local, API-compatible stand-in for the parts of HubSpot's CRM API tierdesk uses, over loopback HTTP.

Why it exists: the HubSpot connector's tests and the demo must drive real HTTP (bearer auth, the search
API's filters, sorting, `after` paging and its 10,000-result cap, batch updates with partial errors,
custom properties, associations, rate limiting without Retry-After) without a HubSpot account. Paths,
bodies and error shapes follow HubSpot's public v3/v4 API (shared/reference/helpdesk-apis.md section 3);
where HubSpot's behaviour is unstated, the choice is marked below.

What it serves (base URL = the sandbox's; HubSpot's is https://api.hubapi.com):

- ``GET  /crm/v3/objects/{contacts|companies|deals}``: list, ``limit`` <= 100, ``after``, ``properties``.
- ``GET|PATCH /crm/v3/objects/{type}/{id}`` (``idProperty=email`` for contacts); ``POST`` creates.
  Contact emails are unique, case-insensitively (409 with the existing id), as in HubSpot.
- ``POST /crm/v3/objects/{type}/search``: ``filterGroups`` (ORed; filters inside ANDed; at most 5 groups,
  10 filters per group, 25 in all), operators EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY
  NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN, one sort, ``limit`` <= 200, ``after``. A page whose
  ``after`` reaches 10,000 is refused with 400, like HubSpot; ``total`` counts every match. Dates compare
  as epoch milliseconds (filter values may be ms or ISO-8601).
- ``POST /crm/v3/objects/{type}/batch/update``: at most 100 inputs (400 above); unknown properties or
  enumeration values refuse the whole batch with 400 (choice); unknown ids give 207 with ``errors``.
- ``GET|POST /crm/v3/properties/{type}``, ``GET|PATCH /crm/v3/properties/{type}/{name}``. Enumeration
  properties only accept their options' values (checkbox values are ``;``-separated).
- ``POST /crm/v4/associations/{from}/{to}/batch/read`` (deals -> contacts/companies and back). Unknown ids
  come back in ``errors`` with 207; known ids without associations have an empty ``to`` (choice).
- Contacts' primary company is the ``associatedcompanyid`` property (HubSpot maintains it).
- Auth: ``Authorization: Bearer <private app token>``, else 401 INVALID_AUTHENTICATION.
- Rate limit (off unless asked for): a rolling window of ``rate_limit`` requests per ``window_ms``. Every
  API answer carries X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds and -Daily/-Daily-Remaining;
  a 429 has the same headers and no Retry-After. (HubSpot may omit the headers on search: choice.)
- ``lastmodifieddate`` (contacts) and ``hs_lastmodifieddate`` (companies, deals) move on every write; deals
  get the calculated ``hs_is_closed_won``. Property values are strings, dates ISO-8601 with milliseconds.

Layout: common.py (constants, property definitions, date formats, errors), state.py (the portal in memory,
direct access for seeding and tests), routes/ (objects, search, properties and associations, each view
marked @route; routes/http.py holds auth, rate limits, error bodies and request parsing), server.py
(HubSpotSandbox), seed.py (CRM data overlapping the Zendesk sandbox's customers).
"""

from sandbox.hubspot.common import SEARCH_CAP, HubSpotError, iso_ms, to_ms
from sandbox.hubspot.server import HubSpotSandbox

__all__ = ["SEARCH_CAP", "HubSpotError", "HubSpotSandbox", "iso_ms", "to_ms"]
