//! The pages a browser navigation gets instead of JSON: a refusal with who is signed in and
//! what the route needs, or the origin's failure, in the app's branding.

use pingora::proxy::Session;

use super::RequestCtx;
use crate::oidc::flow::{display_name, Answer, Lookup, RequestFacts, SignIn};
use crate::pages::{refusal, View};
use crate::respond::Reject;

/// The page for `reject`. The session is looked up (only here, on a refusal a person will
/// read) to say who is signed in and to offer signing out or in as someone else.
pub async fn refusal_page(
    sign_in: &SignIn,
    session: &Session,
    ctx: &RequestCtx,
    reject: &Reject,
) -> Answer {
    let gw = &*ctx.snapshot;
    let (heading, message) = refusal::describe(reject);
    let mut view = View {
        heading,
        message,
        needs: ctx
            .admitted
            .as_ref()
            .map(|a| refusal::needs(reject, &a.require))
            .unwrap_or_default(),
        home_url: "/",
        request_id: &ctx.request_id,
        ..View::default()
    };
    let app = ctx
        .admitted
        .as_ref()
        .map(|a| &a.app)
        .or(ctx.refused_app.as_ref());
    let brand = app.map_or(&gw.branding, |a| &a.branding);
    if let (Some(admitted), Some(conn)) = (&ctx.admitted, &ctx.connection) {
        let req = session.req_header();
        let prefix = &admitted.app.auth_prefix;
        let here: String = url::form_urlencoded::byte_serialize(
            req.uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        )
        .collect();
        if admitted.app.provider.is_some() {
            let facts = RequestFacts {
                req,
                app: &admitted.app,
                host: &admitted.client_host,
                tls: conn.tls,
                request_id: &ctx.request_id,
                pages: &gw.pages,
            };
            match sign_in.session(gw, &facts).await {
                Lookup::Valid(signed_in) => {
                    view.user = Some(display_name(&signed_in.user.claims()));
                    view.sign_out_url = Some(format!("{prefix}/logout"));
                    view.switch_user_url = Some(format!("{prefix}/login?switch=1&rd={here}"));
                }
                Lookup::Missing if reject.status() == 401 || reject.status() == 403 => {
                    if !matches!(reject, Reject::Denied) {
                        view.sign_in_url = Some(format!("{prefix}/login?rd={here}"));
                    }
                }
                Lookup::Missing | Lookup::Unavailable => {}
            }
        } else if let Some(user) = ctx.identity.as_ref().and_then(|i| i.user.clone()) {
            view.user = Some(user);
        }
    }
    gw.pages
        .answer("refusal.html", reject.status(), reject.code(), brand, &view)
}

/// The page for a request the origin could not answer (`status` 502, 504…).
pub fn upstream_page(ctx: &RequestCtx, status: u16, code: &'static str) -> Answer {
    let gw = &*ctx.snapshot;
    let (heading, message) = refusal::upstream(status);
    let brand = ctx
        .admitted
        .as_ref()
        .map_or(&gw.branding, |a| &a.app.branding);
    let view = View {
        heading,
        message: message.to_string(),
        home_url: "/",
        request_id: &ctx.request_id,
        ..View::default()
    };
    gw.pages.answer("refusal.html", status, code, brand, &view)
}
