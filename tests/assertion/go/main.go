// How a Go origin verifies authgate's identity assertion (the snippet in
// docs/forward-auth.md): the JWKS through keyfunc, the token through golang-jwt with pinned
// algorithms, `iss`, `aud` and a required `exp`.
//
// Usage: verify-assertion JWKS_URL ISSUER AUDIENCE TOKEN
// Prints the verified claims as JSON, or the reason it refused and exits 1.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Println("usage: verify-assertion JWKS_URL ISSUER AUDIENCE TOKEN")
		os.Exit(2)
	}
	jwksURL, issuer, audience, token := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	jwks, err := keyfunc.NewDefault([]string{jwksURL})
	if err != nil {
		fmt.Printf("refused: %v\n", err)
		os.Exit(1)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, jwks.Keyfunc,
		jwt.WithValidMethods([]string{"ES256", "EdDSA"}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired())
	if err != nil {
		fmt.Printf("refused: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(claims)
	fmt.Println(string(out))
}
