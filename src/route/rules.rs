//! Route rules: which action applies to a (method, normalised path).
//!
//! Rules are compiled once and sorted by specificity, so a lookup is a walk that stops at the
//! first match. Specificity, highest first:
//! 1. an `exact` rule beats every other kind;
//! 2. a longer literal start wins (`prefix: /admin` beats `prefix: /`; the literal start of
//!    `glob: /admin/*.js` is `/admin/`, of `regex: /v[0-9]+` it is `/v`);
//! 3. then `prefix` beats `glob` beats `regex`;
//! 4. then a rule that names methods beats one that does not;
//! 5. ties go to the rule declared first.
//!
//! No match means the app's `default_action`.

use std::sync::Arc;

use http::Method;

use crate::config::model::{ActionFile, PathOptionsFile, RequireFile, RouteFile};
use crate::config::problems::Problems;
use crate::route::path::normalize;

/// What a route does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Anyone may pass.
    Public,
    /// A signed-in browser session is required.
    Session,
    /// A valid JWT bearer token is required.
    Jwt,
    /// Either a session or a bearer token.
    SessionOrJwt,
    /// Nobody may pass.
    Deny,
}

impl Action {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Public => "public",
            Action::Session => "session",
            Action::Jwt => "jwt",
            Action::SessionOrJwt => "session_or_jwt",
            Action::Deny => "deny",
        }
    }
}

impl From<ActionFile> for Action {
    fn from(file: ActionFile) -> Self {
        match file {
            ActionFile::Public => Action::Public,
            ActionFile::Session => Action::Session,
            ActionFile::Jwt => Action::Jwt,
            ActionFile::SessionOrJwt => Action::SessionOrJwt,
            ActionFile::Deny => Action::Deny,
        }
    }
}

/// Requirements on the identity; all must hold. Evaluated by the authorisation step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Every one of these scopes.
    pub scopes: Vec<String>,
    /// At least one of these groups.
    pub groups: Vec<String>,
    /// For each claim, its value must be one of these.
    pub claims: Vec<(String, Vec<String>)>,
}

impl From<RequireFile> for Requirements {
    fn from(file: RequireFile) -> Self {
        Requirements {
            scopes: file.scopes,
            groups: file.groups,
            claims: file.claims.into_iter().collect(),
        }
    }
}

/// A rule's path pattern. With `fold_case` (the app's `paths.case_insensitive`) exact and
/// prefix patterns compare ignoring ASCII case; globs and regexes are compiled that way.
#[derive(Debug)]
enum PathMatcher {
    Exact {
        path: String,
        fold_case: bool,
    },
    /// Stored without a trailing `/`; the empty string matches every path.
    Prefix {
        path: String,
        fold_case: bool,
    },
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
}

fn same_text(a: &[u8], b: &[u8], fold_case: bool) -> bool {
    if fold_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl PathMatcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Exact { path: p, fold_case } => {
                same_text(path.as_bytes(), p.as_bytes(), *fold_case)
            }
            PathMatcher::Prefix { path: p, fold_case } => {
                let path = path.as_bytes();
                path.get(..p.len())
                    .is_some_and(|start| same_text(start, p.as_bytes(), *fold_case))
                    && matches!(path.get(p.len()), None | Some(b'/'))
            }
            PathMatcher::Glob(g) => g.is_match(path),
            PathMatcher::Regex(r) => r.is_match(path),
        }
    }
}

/// One compiled route rule.
#[derive(Debug)]
pub struct Route {
    /// Name for logs and metrics (`routes[N]` when the config gives none, `default` for the
    /// app's default).
    pub name: Arc<str>,
    /// What to do with a matching request.
    pub action: Action,
    /// Requirements on the identity.
    pub require: Arc<Requirements>,
    matcher: PathMatcher,
    methods: Vec<Method>,
}

impl Route {
    fn applies(&self, method: &Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method)) && self.matcher.matches(path)
    }
}

/// An app's routes, most specific first, plus its default.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    default: Route,
}

impl RouteTable {
    /// The route deciding this request.
    pub fn decide(&self, method: &Method, path: &str) -> &Route {
        self.routes
            .iter()
            .find(|route| route.applies(method, path))
            .unwrap_or(&self.default)
    }

    /// Compiles an app's rules, reporting each problem under `at` (e.g. `apps[0]`).
    pub fn compile(
        files: Vec<RouteFile>,
        default_action: ActionFile,
        paths: PathOptionsFile,
        at: &str,
        problems: &mut Problems,
    ) -> RouteTable {
        let mut ranked = Vec::with_capacity(files.len());
        for (index, file) in files.into_iter().enumerate() {
            let here = format!("{at}.routes[{index}]");
            if let Some((route, rank)) = compile_route(file, index, paths, &here, problems) {
                ranked.push((rank, route));
            }
        }
        // Stable: equal ranks keep their declared order.
        ranked.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
        RouteTable {
            routes: ranked.into_iter().map(|(_, route)| route).collect(),
            default: Route {
                name: Arc::from("default"),
                action: default_action.into(),
                require: Arc::new(Requirements::default()),
                matcher: PathMatcher::Prefix {
                    path: String::new(),
                    fold_case: false,
                },
                methods: Vec::new(),
            },
        }
    }
}

/// (exact, literal start length, kind, names methods) — compared lexicographically.
type Rank = (bool, usize, u8, bool);

fn literal_start(pattern: &str, special: &[char]) -> usize {
    pattern.find(special).unwrap_or(pattern.len())
}

fn compile_route(
    file: RouteFile,
    index: usize,
    paths: PathOptionsFile,
    here: &str,
    problems: &mut Problems,
) -> Option<(Route, Rank)> {
    let name: Arc<str> = Arc::from(file.name.unwrap_or_else(|| format!("routes[{index}]")));
    let given = [
        ("exact", &file.exact),
        ("prefix", &file.prefix),
        ("glob", &file.glob),
        ("regex", &file.regex),
    ];
    let given: Vec<_> = given
        .into_iter()
        .filter_map(|(kind, v)| v.as_ref().map(|v| (kind, v.clone())))
        .collect();
    let (kind, pattern) = match given.as_slice() {
        [one] => one.clone(),
        [] => {
            problems.add(here, "give one of exact, prefix, glob or regex");
            return None;
        }
        _ => {
            problems.add(here, "give only one of exact, prefix, glob or regex");
            return None;
        }
    };
    let field = format!("{here}.{kind}");
    let normal_form = |pattern: &str, problems: &mut Problems| -> bool {
        match normalize(pattern, paths) {
            Ok(n) if n == pattern => true,
            Ok(n) => {
                problems.add(
                    &field,
                    format!("`{pattern}` is not a normalised path; write `{n}`"),
                );
                false
            }
            Err(e) => {
                problems.add(&field, format!("`{pattern}` can never match: {e}"));
                false
            }
        }
    };
    let (matcher, rank) = match kind {
        "exact" => {
            if !normal_form(&pattern, problems) {
                return None;
            }
            let len = pattern.len();
            let fold_case = paths.case_insensitive;
            (
                PathMatcher::Exact {
                    path: pattern,
                    fold_case,
                },
                (true, len, 3, false),
            )
        }
        "prefix" => {
            if !normal_form(&pattern, problems) {
                return None;
            }
            let trimmed = pattern.trim_end_matches('/').to_string();
            let len = trimmed.len();
            let fold_case = paths.case_insensitive;
            (
                PathMatcher::Prefix {
                    path: trimmed,
                    fold_case,
                },
                (false, len, 2, false),
            )
        }
        "glob" => {
            if !pattern.starts_with('/') {
                problems.add(&field, format!("`{pattern}` must start with '/'"));
                return None;
            }
            let glob = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .case_insensitive(paths.case_insensitive)
                .build();
            match glob {
                Ok(glob) => {
                    let len = literal_start(&pattern, &['*', '?', '[', '{', '\\']);
                    (
                        PathMatcher::Glob(glob.compile_matcher()),
                        (false, len, 1, false),
                    )
                }
                Err(e) => {
                    problems.add(&field, format!("invalid glob: {e}"));
                    return None;
                }
            }
        }
        _ => {
            let unanchored = pattern.strip_prefix('^').unwrap_or(&pattern);
            let unanchored = unanchored.strip_suffix('$').unwrap_or(unanchored);
            let re = regex::RegexBuilder::new(&format!("^(?:{unanchored})$"))
                .case_insensitive(paths.case_insensitive)
                .build();
            match re {
                Ok(re) => {
                    let len = if unanchored.contains('|') {
                        0
                    } else {
                        literal_start(unanchored, &['\\', '.', '+', '*', '?', '(', ')', '[', '{'])
                    };
                    (PathMatcher::Regex(re), (false, len, 0, false))
                }
                Err(e) => {
                    problems.add(&field, format!("invalid regex: {e}"));
                    return None;
                }
            }
        }
    };
    let mut methods = Vec::with_capacity(file.methods.len());
    for (i, m) in file.methods.iter().enumerate() {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) => methods.push(method),
            Err(_) => problems.add(
                &format!("{here}.methods[{i}]"),
                format!("`{m}` is not an HTTP method"),
            ),
        }
    }
    let action: Action = file.action.into();
    if file.require.is_some() && matches!(action, Action::Public | Action::Deny) {
        problems.add(
            &format!("{here}.require"),
            "require applies only to session, jwt and session_or_jwt routes",
        );
    }
    let rank = (rank.0, rank.1, rank.2, !methods.is_empty());
    Some((
        Route {
            name,
            action,
            require: Arc::new(file.require.map(Requirements::from).unwrap_or_default()),
            matcher,
            methods,
        },
        rank,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(yaml: &str) -> Result<RouteTable, Problems> {
        let files: Vec<RouteFile> = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Problems::default();
        let table = RouteTable::compile(
            files,
            ActionFile::Session,
            PathOptionsFile::default(),
            "apps[0]",
            &mut problems,
        );
        problems.into_result(table)
    }

    fn decide<'t>(table: &'t RouteTable, method: &str, path: &str) -> &'t str {
        &table
            .decide(&Method::from_bytes(method.as_bytes()).unwrap(), path)
            .name
    }

    #[test]
    fn case_folding_is_an_app_option() {
        let files: Vec<RouteFile> = serde_yaml_ng::from_str(
            "[{prefix: /admins, action: deny}, {exact: /Billing, action: deny}, {glob: '/r/*.pdf', action: deny}, {regex: '/e/[0-9]+', action: deny}]",
        )
        .unwrap();
        let paths = PathOptionsFile {
            case_insensitive: true,
            ..PathOptionsFile::default()
        };
        let mut problems = Problems::default();
        let table = RouteTable::compile(files, ActionFile::Public, paths, "apps[0]", &mut problems);
        assert!(problems.is_empty());
        for path in ["/ADMINS", "/aDmInS/x", "/billing", "/R/A.PDF", "/E/1"] {
            assert_eq!(
                table.decide(&Method::GET, path).action,
                Action::Deny,
                "{path}"
            );
        }
        for path in ["/adminsx", "/billing/x", "/r/a/b.pdf"] {
            assert_eq!(
                table.decide(&Method::GET, path).action,
                Action::Public,
                "{path}"
            );
        }
    }

    #[test]
    fn prefix_matches_whole_segments() {
        let t = table("[{name: api, prefix: /api, action: public}]").unwrap();
        assert_eq!(decide(&t, "GET", "/api"), "api");
        assert_eq!(decide(&t, "GET", "/api/"), "api");
        assert_eq!(decide(&t, "GET", "/api/x"), "api");
        assert_eq!(decide(&t, "GET", "/apix"), "default");
    }

    #[test]
    fn most_specific_wins_regardless_of_order() {
        let t = table(
            "
            - {name: all, prefix: /, action: public}
            - {name: admin-js, glob: '/admin/**/*.js', action: public}
            - {name: admin, prefix: /admin, action: deny}
            - {name: login, exact: /admin/login, action: public}
            - {name: admin-post, prefix: /admin, methods: [post], action: session}
            - {name: versioned, regex: '/v[0-9]+/.*', action: jwt}
            ",
        )
        .unwrap();
        assert_eq!(decide(&t, "GET", "/"), "all");
        assert_eq!(decide(&t, "GET", "/admin/settings"), "admin");
        assert_eq!(decide(&t, "POST", "/admin/settings"), "admin-post");
        assert_eq!(decide(&t, "GET", "/admin/login"), "login");
        assert_eq!(decide(&t, "GET", "/admin/static/app.js"), "admin-js");
        assert_eq!(decide(&t, "GET", "/v2/items"), "versioned");
        assert_eq!(decide(&t, "GET", "/v2x/items"), "all");
    }

    #[test]
    fn ties_go_to_the_first_declared() {
        let t = table(
            "
            - {name: first, prefix: /a, action: public}
            - {name: second, prefix: /a/, action: deny}
            ",
        )
        .unwrap();
        assert_eq!(decide(&t, "GET", "/a/b"), "first");
    }

    #[test]
    fn glob_star_stays_in_its_segment_and_regex_is_anchored() {
        let t = table(
            "
            - {name: one, glob: '/files/*', action: public}
            - {name: re, regex: '/r/[a-z]+', action: public}
            ",
        )
        .unwrap();
        assert_eq!(decide(&t, "GET", "/files/a"), "one");
        assert_eq!(decide(&t, "GET", "/files/a/b"), "default");
        assert_eq!(decide(&t, "GET", "/r/abc"), "re");
        assert_eq!(decide(&t, "GET", "/r/abc/def"), "default");
        assert_eq!(decide(&t, "GET", "/x/r/abc"), "default");
    }

    #[test]
    fn no_rules_means_the_default_protects_everything() {
        let t = table("[]").unwrap();
        let route = t.decide(&Method::GET, "/anything");
        assert_eq!(route.action, Action::Session);
    }

    #[test]
    fn every_bad_rule_is_reported_with_its_path() {
        let problems = table(
            "
            - {prefix: /a/../b, action: public}
            - {exact: /x, prefix: /y, action: public}
            - {action: public}
            - {regex: '/(', action: public}
            - {glob: 'no-slash', action: public}
            - {exact: /ok, methods: ['GE T'], action: public}
            - {exact: /p, action: public, require: {scopes: [read]}}
            - {exact: '/a;b', action: public}
            ",
        )
        .unwrap_err()
        .to_string();
        for field in [
            "apps[0].routes[0].prefix",
            "apps[0].routes[1]",
            "apps[0].routes[2]",
            "apps[0].routes[3].regex",
            "apps[0].routes[4].glob",
            "apps[0].routes[5].methods[0]",
            "apps[0].routes[6].require",
            "apps[0].routes[7].exact",
        ] {
            assert!(
                problems.contains(field),
                "{field} missing from:\n{problems}"
            );
        }
    }
}
