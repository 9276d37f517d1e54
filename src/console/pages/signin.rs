//! The sign-in page (the forms; checking them is the console's own business).

use askama::Template;

use super::Frame;

#[derive(Template)]
#[template(path = "console/signin.html")]
pub struct SigninPage {
    pub frame: Frame,
    /// The sign-in form's token, bound to its cookie.
    pub csrf: String,
    pub account: String,
}
