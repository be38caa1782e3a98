//! The pages a person sees from the gateway itself: a refusal (what happened, who is signed
//! in, what the page needs, how to sign out or in as someone else, the request id), the
//! sign-out confirmation, and the signed-out page. API clients get JSON instead; see
//! [`wants_html`].
//!
//! Pages are minijinja templates with HTML auto-escaping, built in (`src/pages/templates/`)
//! and replaceable one by one from `pages.templates_dir`; each app can carry its own branding
//! (title, logo, accent colour). Templates are compiled and test-rendered when the
//! configuration loads, so a broken one is a configuration problem, not a failed request.

pub mod refusal;

use std::path::Path;

use bytes::Bytes;
use http::HeaderValue;
use minijinja::Environment;
use pingora::http::RequestHeader;
use serde::Serialize;

/// Every template, with its built-in source.
const TEMPLATES: [(&str, &str); 4] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("refusal.html", include_str!("templates/refusal.html")),
    ("signout.html", include_str!("templates/signout.html")),
    ("signed_out.html", include_str!("templates/signed_out.html")),
];

/// Only the styles in the page itself, images from https or `data:`, forms back to the same
/// origin, and no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the pages of an app look.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Branding {
    /// Shown in the header and the window title.
    pub title: String,
    /// An `https:` or `data:image/` URL.
    pub logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub accent_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            title: "authgate".into(),
            logo_url: None,
            accent_color: "#3b5bdb".into(),
        }
    }
}

/// Checks a branding's values, naming the field (under `at`) of each problem.
pub fn check_branding(
    logo_url: Option<&str>,
    accent_color: Option<&str>,
    at: &str,
    problems: &mut crate::config::Problems,
) {
    if let Some(logo) = logo_url {
        let data_image = logo.starts_with("data:image/");
        let https = url::Url::parse(logo).is_ok_and(|u| u.scheme() == "https");
        if !(data_image || https) {
            problems.add(
                &format!("{at}.logo_url"),
                format!("`{logo}` is not an https: or data:image/ URL"),
            );
        }
    }
    if let Some(color) = accent_color {
        let hex = color.strip_prefix('#').unwrap_or("");
        if !(matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())) {
            problems.add(
                &format!("{at}.accent_color"),
                format!("`{color}` is not a colour written #rgb or #rrggbb"),
            );
        }
    }
}

/// What a page shows. Every text is escaped by the template engine.
#[derive(Debug, Default, Serialize)]
pub struct View<'a> {
    /// The status line's meaning, as a heading.
    pub heading: &'a str,
    /// What happened, in a sentence or two.
    pub message: String,
    /// What the page needs that the visitor lacks (groups, scopes, claims).
    pub needs: Vec<String>,
    /// Who is signed in, if anyone.
    pub user: Option<String>,
    /// Links the page offers.
    pub sign_in_url: Option<String>,
    /// Signs the user out.
    pub sign_out_url: Option<String>,
    /// Signs in again, asking the provider for a fresh login.
    pub switch_user_url: Option<String>,
    /// Where "Start page" goes.
    pub home_url: &'a str,
    /// The sign-out form's target.
    pub form_action: Option<String>,
    /// Sign-out also ends the provider's session.
    pub ends_provider_session: bool,
    /// The request's id.
    pub request_id: &'a str,
}

/// The compiled templates.
pub struct Pages {
    templates: Environment<'static>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Pages {
    /// The built-in templates, each replaced by the file of the same name in `overrides` when
    /// there is one. Errors name the file and line.
    pub fn load(overrides: Option<&Path>) -> Result<Pages, String> {
        let mut templates = Environment::new();
        templates.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, source) in TEMPLATES {
            let replaced = overrides.map(|dir| dir.join(name)).filter(|p| p.exists());
            let (source, origin) = match &replaced {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                    path.display().to_string(),
                ),
                None => (source.to_string(), format!("built-in {name}")),
            };
            templates
                .add_template_owned(name, source)
                .map_err(|e| describe(&origin, &e))?;
        }
        let pages = Pages { templates };
        // Render each once, so an error shows now rather than on a visitor's request.
        let view = View {
            heading: "Check",
            user: Some("someone".into()),
            needs: vec!["check".into()],
            home_url: "/",
            ..View::default()
        };
        for (name, _) in TEMPLATES.iter().skip(1) {
            pages
                .render(name, &Branding::default(), &view)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(pages)
    }

    fn render(&self, name: &str, brand: &Branding, view: &View) -> Result<String, String> {
        #[derive(Serialize)]
        struct Context<'a> {
            brand: &'a Branding,
            #[serde(flatten)]
            view: &'a View<'a>,
        }
        let template = self
            .templates
            .get_template(name)
            .map_err(|e| describe(name, &e))?;
        template
            .render(Context { brand, view })
            .map_err(|e| describe(name, &e))
    }

    /// `template` rendered as an HTML answer with `status`; a template that fails (a bad
    /// override) falls back to a plain sentence, never to no answer.
    pub fn answer(
        &self,
        template: &str,
        status: u16,
        decision: &'static str,
        brand: &Branding,
        view: &View,
    ) -> crate::oidc::flow::Answer {
        let body = self.render(template, brand, view).unwrap_or_else(|e| {
            tracing::error!(template, error = %e, "page template failed; plain page sent");
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{status}</title><p>{}</p>\n",
                minijinja::HtmlEscape(view.heading)
            )
        });
        crate::oidc::flow::Answer::html(status, decision, Bytes::from(body))
            .header(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            )
            .header(
                http::header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            )
            .header(
                http::header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            )
    }
}

fn describe(origin: &str, e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "{origin}, line {line}: {}",
            e.detail().unwrap_or(&e.to_string())
        ),
        None => format!("{origin}: {e}"),
    }
}

/// A person's browser navigating (show a page) rather than a script or API client (JSON).
pub fn wants_html(req: &RequestHeader) -> bool {
    crate::oidc::flow::is_browser(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>() -> View<'a> {
        View {
            heading: "Access denied",
            message: "You are signed in, but this page is for members of a group you are not in."
                .into(),
            needs: vec!["members of <admins>".into()],
            user: Some("<script>alert(1)</script>".into()),
            sign_out_url: Some("/_auth/logout".into()),
            home_url: "/",
            request_id: "abc123",
            ..View::default()
        }
    }

    #[test]
    fn pages_escape_what_they_show() {
        let pages = Pages::load(None).unwrap();
        let html = pages
            .render("refusal.html", &Branding::default(), &view())
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("members of &lt;admins&gt;"));
        assert!(html.contains("abc123"));
        assert!(html.contains("href=\"&#x2f;_auth&#x2f;logout\""), "{html}");
    }

    #[test]
    fn an_override_replaces_one_template_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("refusal.html"),
            "<h1>{{ heading }}</h1><p>Call the help desk, quoting {{ request_id }}.</p>",
        )
        .unwrap();
        let pages = Pages::load(Some(dir.path())).unwrap();
        let html = pages
            .render("refusal.html", &Branding::default(), &view())
            .unwrap();
        assert_eq!(
            html,
            "<h1>Access denied</h1><p>Call the help desk, quoting abc123.</p>"
        );
        // The others are still the built-in ones.
        assert!(pages
            .render("signed_out.html", &Branding::default(), &view())
            .unwrap()
            .contains("<!doctype html>"));
        std::fs::write(dir.path().join("signout.html"), "{% if user %}unclosed").unwrap();
        let e = Pages::load(Some(dir.path())).unwrap_err();
        assert!(e.contains("signout.html"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn branding_values_are_checked() {
        let mut problems = crate::config::Problems::default();
        check_branding(
            Some("http://x/logo.png"),
            Some("red"),
            "pages.branding",
            &mut problems,
        );
        check_branding(
            Some("https://x/logo.png"),
            Some("#0b5fff"),
            "ok",
            &mut problems,
        );
        check_branding(
            Some("data:image/png;base64,AA=="),
            Some("#abc"),
            "ok",
            &mut problems,
        );
        let fields: Vec<&str> = problems.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["pages.branding.logo_url", "pages.branding.accent_color"]
        );
    }
}
