"""Kafka's security model: listener security protocols (TLS, SASL), principals, SCRAM credentials,
delegation tokens, OAuth bearer tokens.

- :mod:`kbroker.security.tls`: the TLS context of an SSL/SASL_SSL listener from Kafka's
  ``ssl.*`` keys (PEM stores), and the client certificate's principal
  (``ssl.principal.mapping.rules``).
- :mod:`kbroker.security.jaas`: Kafka's JAAS line (``sasl.jaas.config``) as its JaasConfig parses it.
- :mod:`kbroker.security.scram`: SCRAM-SHA-256/512 (RFC 5802/7677) as Kafka's ScramSaslServer, and
  the credentials kept from the metadata log's UserScramCredentialRecords.
- :mod:`kbroker.security.tokens`: delegation tokens kept from the metadata log's
  DelegationTokenRecords, their HMACs and the SCRAM credentials a token logs in with.
- :mod:`kbroker.security.oauthbearer`: SASL/OAUTHBEARER as Kafka's OAuthBearerSaslServer, with the
  unsecured-JWS validator and the JWKS validator.
- :mod:`kbroker.security.sasl`: the per-connection SASL state machine (Kafka's
  SaslServerAuthenticator) run before any other request on a SASL listener.
- :mod:`kbroker.security.listeners`: each listener's settings, built and checked at start-up.
"""
