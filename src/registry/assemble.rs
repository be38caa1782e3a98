//! Builds the snapshot from the config file, the stored apps and the active custom domains,
//! leaving out (and reporting) whatever stored state does not compile with the rest.
//!
//! The whole is compiled first; that is the only compile when all is well. When it fails, the
//! problems name the stored apps at fault (`apps[N]…`), which are left out and the rest
//! compiled again — a few rounds at most, whatever the number of apps. Then each active domain
//! whose name another app already serves is left out. Only a problem no stored app or domain
//! is named for (and that the config file alone does not have) falls back to adding them one
//! at a time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{lines, to_app, Registry, Unserved};
use crate::config::model::AppFile;
use crate::config::{compile, parse_file_text, Gateway, Problems};

/// What a compile's problems blame: stored apps and active domains, by position.
#[derive(Default)]
struct Blame {
    apps: BTreeSet<usize>,
    domains: BTreeSet<usize>,
}

/// The index in `field` after `apps[`, and the rest of the field.
fn app_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("apps[")?;
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest.trim_start_matches('.')))
}

/// The problems of the app at `index`, relative to the app (`routes[0].regex: …`).
fn app_lines(problems: &Problems, index: usize) -> Vec<String> {
    problems
        .0
        .iter()
        .filter_map(|p| {
            let (i, rest) = app_field(&p.field)?;
            (i == index).then(|| {
                let field = if rest.is_empty() { "(app)" } else { rest };
                format!("{field}: {}", p.message)
            })
        })
        .collect()
}

impl Registry {
    /// The config file plus `api_apps` plus the active domains of `domains`, as one file.
    fn assemble(
        &self,
        text: &str,
        api_apps: &[AppFile],
        domains: &[(String, String)],
    ) -> Result<Gateway, Problems> {
        let mut file = parse_file_text(text, &self.config_path)?;
        file.apps.extend(api_apps.iter().cloned());
        let by_id: HashMap<String, usize> = file
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        for (app, domain) in domains {
            if let Some(i) = by_id.get(app) {
                file.apps[*i].custom_domains.push(domain.clone());
            }
        }
        compile::compile_after(file, Some(&self.snapshot.load()))
    }

    /// Compiles the config file plus `api_apps` plus the active custom domains; the stored
    /// apps and domains left out are returned as unserved. Only a config file that does not
    /// compile by itself is an error.
    pub(super) fn build(&self, api_apps: &[Value]) -> Result<(Gateway, Vec<Unserved>), Problems> {
        let text = std::fs::read_to_string(&self.config_path).map_err(|e| {
            let mut p = Problems::default();
            p.add(
                "(file)",
                format!("cannot read {}: {e}", self.config_path.display()),
            );
            p
        })?;
        let active = self.domains.active();
        *self.built_with.lock().unwrap_or_else(|e| e.into_inner()) = active.clone();
        let mut unserved = Vec::new();
        let mut apps = Vec::with_capacity(api_apps.len());
        for value in api_apps {
            match to_app(value) {
                Ok(app) => apps.push(app),
                Err(e) => unserved.push(Unserved {
                    app: value
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    domain: None,
                    problems: vec![e],
                }),
            }
        }
        if let Ok(gateway) = self.assemble(&text, &apps, &active) {
            return Ok((gateway, unserved));
        }
        let file_count = parse_file_text(&text, &self.config_path)?.apps.len();
        // The stored apps alone: leave out each one the problems name, until it compiles.
        let base = loop {
            let problems = match self.assemble(&text, &apps, &[]) {
                Ok(gateway) => break gateway,
                Err(problems) => problems,
            };
            let blame = self.blame(&problems, file_count, &apps, &[]);
            if blame.apps.is_empty() {
                // The config file's own problem is the error; anything else is found by
                // adding the stored apps one at a time.
                self.assemble(&text, &[], &[])?;
                return self.build_one_by_one(&text, apps, active, unserved);
            }
            for index in blame.apps.iter().rev() {
                let app = apps.remove(*index);
                unserved.push(Unserved {
                    app: app.id,
                    domain: None,
                    problems: app_lines(&problems, file_count + index),
                });
            }
        };
        // Then each active domain of a served app whose name is free.
        let mut served: Vec<(String, String)> = Vec::with_capacity(active.len());
        let base_apps: std::collections::HashSet<Arc<str>> =
            base.hosts.apps().iter().map(|a| a.id.clone()).collect();
        for (app, domain) in active {
            if !base_apps.contains(app.as_str()) {
                continue;
            }
            match base.hosts.lookup(&domain) {
                Some(owner) => unserved.push(Unserved {
                    app,
                    problems: vec![format!(
                        "custom_domains: `{domain}` is already served by app `{}`",
                        owner.id
                    )],
                    domain: Some(domain),
                }),
                None => served.push((app, domain)),
            }
        }
        loop {
            let problems = match self.assemble(&text, &apps, &served) {
                Ok(gateway) => return Ok((gateway, unserved)),
                Err(problems) => problems,
            };
            let blame = self.blame(&problems, file_count, &apps, &served);
            if blame.domains.is_empty() || !blame.apps.is_empty() {
                return self.build_one_by_one(&text, apps, served, unserved);
            }
            for index in blame.domains.iter().rev() {
                let (app, domain) = served.remove(*index);
                unserved.push(Unserved {
                    app,
                    domain: Some(domain),
                    problems: lines(&problems),
                });
            }
        }
    }

    /// Which stored apps and served domains `problems` name. A domain is named by the field
    /// of the app it was added to (`apps[N].custom_domains[j]`, past the app's own).
    fn blame(
        &self,
        problems: &Problems,
        file_count: usize,
        apps: &[AppFile],
        served: &[(String, String)],
    ) -> Blame {
        let own_domains = |n: usize| -> Option<(&str, usize)> {
            let app = apps.get(n.checked_sub(file_count)?)?;
            Some((app.id.as_str(), app.custom_domains.len()))
        };
        let file_apps = if file_count > 0 {
            std::fs::read_to_string(&self.config_path)
                .ok()
                .and_then(|t| parse_file_text(&t, &self.config_path).ok())
                .map(|f| f.apps)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut blame = Blame::default();
        for problem in &problems.0 {
            let Some((n, rest)) = app_field(&problem.field) else {
                continue;
            };
            let (id, own) = match own_domains(n) {
                Some(found) => found,
                None => match file_apps.get(n) {
                    Some(app) => (app.id.as_str(), app.custom_domains.len()),
                    None => continue,
                },
            };
            let added = rest
                .strip_prefix("custom_domains[")
                .and_then(|r| r.split_once(']'))
                .and_then(|(j, _)| j.parse::<usize>().ok())
                .and_then(|j| j.checked_sub(own));
            match added {
                // The k-th domain added to this app.
                Some(k) => {
                    let position = served
                        .iter()
                        .enumerate()
                        .filter(|(_, (app, _))| app == id)
                        .nth(k)
                        .map(|(position, _)| position);
                    blame.domains.extend(position);
                }
                None if n >= file_count => {
                    blame.apps.insert(n - file_count);
                }
                None => {}
            }
        }
        blame
    }

    /// The slow way, for problems no single app or domain is named for: each stored app, and
    /// then each active domain, joins only if the result still compiles.
    fn build_one_by_one(
        &self,
        text: &str,
        apps: Vec<AppFile>,
        active: Vec<(String, String)>,
        mut unserved: Vec<Unserved>,
    ) -> Result<(Gateway, Vec<Unserved>), Problems> {
        let mut kept: Vec<AppFile> = Vec::with_capacity(apps.len());
        for app in apps {
            let id = app.id.clone();
            kept.push(app);
            if let Err(problems) = self.assemble(text, &kept, &[]) {
                kept.pop();
                unserved.push(Unserved {
                    app: id,
                    domain: None,
                    problems: lines(&problems),
                });
            }
        }
        let mut served: Vec<(String, String)> = Vec::with_capacity(active.len());
        for (app, domain) in active {
            if unserved.iter().any(|u| u.app == app && u.domain.is_none()) {
                continue;
            }
            served.push((app.clone(), domain.clone()));
            if let Err(problems) = self.assemble(text, &kept, &served) {
                served.pop();
                unserved.push(Unserved {
                    app,
                    domain: Some(domain),
                    problems: lines(&problems),
                });
            }
        }
        Ok((self.assemble(text, &kept, &served)?, unserved))
    }
}
