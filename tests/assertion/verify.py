"""How an origin verifies authgate's identity assertion with PyJWT: fetch the JWKS, pick the
key by the token's `kid`, check the signature, `iss`, `aud` and `exp`.

Usage: verify.py JWKS_URL ISSUER AUDIENCE TOKEN
Prints the verified claims as JSON, or the reason it refused and exits 1.
"""

import json
import sys

import jwt


def main():
    jwks_url, issuer, audience, token = sys.argv[1:5]
    try:
        # A fresh client per run: no key set cached from an earlier run.
        key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256", "EdDSA"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    except Exception as e:  # the reason is the test's evidence
        print(f"refused: {type(e).__name__}: {e}")
        sys.exit(1)
    print(json.dumps(claims))


if __name__ == "__main__":
    main()
