// A real OpenID Connect provider (the certified npm `oidc-provider`) for authgate's
// integration tests and load harness. Started with PORT, REDIRECT_URI and POST_LOGOUT_URI; signs
// in any login through its development interactions. Loopback only. With APACHE_REDIRECT_URI
// it also registers the client Apache mod_auth_openidc signs in with (load harness).
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'authgate',
    client_secret: 'authgate-test-secret',
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }].concat(process.env.APACHE_REDIRECT_URI ? [{
    client_id: 'apache',
    client_secret: 'apache-test-secret',
    redirect_uris: [process.env.APACHE_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }] : []),
  cookies: { keys: ['authgate-test-provider-cookie-key'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com` };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email'] },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ready on ${issuer}`));
