"""A throw-away PKI for tests: CAs, client and server certificates, CRLs.

Role: make real X.509 material with ``cryptography`` so client-certificate tests run
over real TLS sockets (curl --cert, Python ssl) instead of mocks. Everything is made
fresh per test run in a temporary directory; nothing here is for production.

    pki = TestPki(tmp_path)
    server_ca, client_ca = pki.ca("Server CA"), pki.ca("Client CA")
    server = pki.server(server_ca)                 # server.cert_file / server.key_file
    alice = pki.client(client_ca, "alice", email="alice@example.test",
                       upn="alice@example.test")
    ctx = alice.client_context(server_ca.cert_file)  # or curl --cert alice.cert_file
    crl = pki.write_crl(client_ca, revoked=[alice])
"""

from tests.pki.ca import Issued, TestCa, TestPki

__all__ = ["Issued", "TestCa", "TestPki"]
