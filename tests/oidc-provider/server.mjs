// A real OpenID Connect provider (the certified npm `oidc-provider`) for authgate's
// integration tests and load harness. Started with PORT, REDIRECT_URI (several, comma-separated)
// and POST_LOGOUT_URI; signs in any login through its development interactions. Loopback only.
// With APACHE_REDIRECT_URI it also registers the client Apache mod_auth_openidc signs in with,
// and with OAUTH2_PROXY_REDIRECT_URI (comma-separated) oauth2-proxy's (load harness). With BACKCHANNEL_LOGOUT_URI the gateway's client is registered for
// Back-Channel Logout 1.0 (with `sid`), and the provider's outgoing requests reach test host
// names (app.test:PORT) on 127.0.0.1.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'authgate',
    client_secret: 'authgate-test-secret',
    redirect_uris: process.env.REDIRECT_URI.split(','),
    post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(process.env.BACKCHANNEL_LOGOUT_URI ? {
      backchannel_logout_uri: process.env.BACKCHANNEL_LOGOUT_URI,
      backchannel_logout_session_required: true,
    } : {}),
  }].concat(process.env.APACHE_REDIRECT_URI ? [{
    client_id: 'apache',
    client_secret: 'apache-test-secret',
    redirect_uris: [process.env.APACHE_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }] : []).concat(process.env.OAUTH2_PROXY_REDIRECT_URI ? [{
    client_id: 'oauth2-proxy',
    client_secret: 'oauth2-proxy-test-secret',
    redirect_uris: process.env.OAUTH2_PROXY_REDIRECT_URI.split(','),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }] : []),
  cookies: { keys: ['authgate-test-provider-cookie-key'] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: Boolean(process.env.BACKCHANNEL_LOGOUT_URI) },
  },
  ...(process.env.BACKCHANNEL_LOGOUT_URI ? { fetch: toLoopback } : {}),
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
provider.on('backchannel.error', (ctx, err) => console.error(`back-channel logout failed: ${err.message}`));
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ready on ${issuer}`));

// The provider's outgoing requests (only the back-channel logout POST here), sent to 127.0.0.1
// with the URL's host in the Host header: the tests' host names do not resolve. Only the
// status is read by the caller.
function toLoopback(url, options) {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port: target.port,
      path: target.pathname + target.search,
      method: options.method,
      headers: { ...Object.fromEntries(options.headers), host: target.host },
    }, (response) => {
      response.resume();
      resolve({ status: response.statusCode });
    });
    request.on('error', reject);
    request.end(String(options.body ?? ''));
  });
}
