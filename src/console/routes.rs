//! The console's paths. A repository's own pages sit after a `-` segment
//! (`/console/repositories/team/app/-/lifecycle`): no repository name component can be
//! `-`, so a name with slashes never reads as a page.

use axum::http::Method;

use crate::oci::RepositoryName;

/// A page of one repository.
#[derive(Debug, PartialEq, Eq)]
pub enum RepositoryPart {
    Home,
    Settings,
    Tags,
    Delete,
    Lifecycle,
    Policy,
    /// An image, by the digest the path gives (checked by the page).
    Image(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Repositories,
    CreateRepository,
    Repository(RepositoryName, RepositoryPart),
    Registry,
    RegistryPolicy,
    Usage,
    Events,
    Signout,
}

impl Route {
    /// The route of a signed-in request (`rest`: the path after `/console`), and
    /// whether it takes a form (POST).
    pub fn parse(method: &Method, rest: &str) -> Option<(Route, bool)> {
        let post = *method == Method::POST;
        if !post && *method != Method::GET {
            return None;
        }
        let route = match rest {
            "" | "/repositories" if !post => Route::Repositories,
            "/repositories" => Route::CreateRepository,
            "/registry" => Route::Registry,
            "/registry/policy" => Route::RegistryPolicy,
            "/usage" if !post => Route::Usage,
            "/events" if !post => Route::Events,
            "/signout" if post => Route::Signout,
            _ => {
                let path = rest.strip_prefix("/repositories/")?;
                let (name, part) = match path.split_once("/-/") {
                    Some((name, part)) => (name, Self::repository_part(part, post)?),
                    None if !post => (path, RepositoryPart::Home),
                    None => return None,
                };
                Route::Repository(name.parse().ok()?, part)
            }
        };
        Some((route, post))
    }

    fn repository_part(part: &str, post: bool) -> Option<RepositoryPart> {
        Some(match part {
            "settings" if post => RepositoryPart::Settings,
            "tags" if post => RepositoryPart::Tags,
            "delete" if post => RepositoryPart::Delete,
            "lifecycle" => RepositoryPart::Lifecycle,
            "policy" => RepositoryPart::Policy,
            _ if !post => RepositoryPart::Image(part.strip_prefix("images/")?.to_owned()),
            _ => return None,
        })
    }

    /// The operation the metrics count it as.
    pub fn operation(&self, post: bool) -> &'static str {
        match (self, post) {
            (Route::Repositories, _) => "repositories_page",
            (Route::CreateRepository, _) => "create_repository",
            (Route::Registry, false) => "registry_page",
            (Route::Registry, true) => "registry_form",
            (Route::RegistryPolicy, false) => "registry_policy_page",
            (Route::RegistryPolicy, true) => "registry_policy_form",
            (Route::Usage, _) => "usage_page",
            (Route::Events, _) => "events_page",
            (Route::Signout, _) => "signout",
            (Route::Repository(_, part), post) => match (part, post) {
                (RepositoryPart::Home, _) => "repository_page",
                (RepositoryPart::Settings, _) => "repository_settings_form",
                (RepositoryPart::Tags, _) => "repository_tags_form",
                (RepositoryPart::Delete, _) => "delete_repository",
                (RepositoryPart::Lifecycle, false) => "lifecycle_page",
                (RepositoryPart::Lifecycle, true) => "lifecycle_form",
                (RepositoryPart::Policy, false) => "repository_policy_page",
                (RepositoryPart::Policy, true) => "repository_policy_form",
                (RepositoryPart::Image(_), _) => "image_page",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(rest: &str) -> Option<Route> {
        Route::parse(&Method::GET, rest).map(|(r, _)| r)
    }

    fn post(rest: &str) -> Option<Route> {
        Route::parse(&Method::POST, rest).map(|(r, _)| r)
    }

    fn name(s: &str) -> RepositoryName {
        s.parse().expect("a valid repository name")
    }

    #[test]
    fn names_with_slashes_and_page_words_stay_names() {
        assert_eq!(
            get("/repositories/team/lifecycle"),
            Some(Route::Repository(
                name("team/lifecycle"),
                RepositoryPart::Home
            ))
        );
        assert_eq!(
            get("/repositories/team/app/-/lifecycle"),
            Some(Route::Repository(
                name("team/app"),
                RepositoryPart::Lifecycle
            ))
        );
        assert_eq!(
            post("/repositories/a/delete"),
            None,
            "a form needs its page after -/"
        );
    }

    #[test]
    fn images_by_digest_and_forms_by_method() {
        let d = "sha256:0123";
        assert_eq!(
            get(&format!("/repositories/app/-/images/{d}")),
            Some(Route::Repository(
                name("app"),
                RepositoryPart::Image(d.into())
            ))
        );
        assert_eq!(get("/repositories/app/-/delete"), None);
        assert_eq!(post("/repositories/app/-/images/x"), None);
        assert_eq!(post("/repositories"), Some(Route::CreateRepository));
        assert_eq!(get("/signout"), None);
        assert_eq!(get("/repositories/Bad"), None);
        assert_eq!(Route::parse(&Method::DELETE, "/usage"), None);
    }
}
