// How a Node.js origin verifies authgate's identity assertion with `jose` (the snippet in
// docs/forward-auth.md): the remote JWKS, the key by `kid`, pinned algorithms, `iss`, `aud`.
//
// Usage: node verify-assertion.mjs JWKS_URL ISSUER AUDIENCE TOKEN
// Prints the verified claims as JSON, or the reason it refused and exits 1.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, issuer, audience, token] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL(jwksUrl));
try {
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ['ES256', 'EdDSA'],
    requiredClaims: ['exp', 'iat', 'sub', 'jti'],
  });
  console.log(JSON.stringify(payload));
} catch (e) {
  console.log(`refused: ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
