"""HTTP plumbing shared by the node's web front ends (health, web mail, ActiveSync).

- ``gateway.http.server``: ``HttpService``, uvicorn on the node's own sockets;
- ``gateway.http.tls``: the verified client certificate in the ASGI scope;
- ``gateway.http.forms``: forms-session cookies, CSRF, the session middleware;
- ``gateway.http.client_cert``: client-certificate login for HTTP requests.
"""
