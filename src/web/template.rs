//! Templates from `templates/`, rendered with minijinja, HTML-autoescaped.
//!
//! Mirrors Tornado's `tornado/template.py` `Loader` as used by
//! `RequestHandler.render`: templates are loaded by name from one
//! directory (or a [`Bundle`] built into the
//! program), cached, and re-read on every render in debug mode. The syntax
//! is Jinja's (`{{ x }}`, `{% for %}...{% endfor %}`) rather than Tornado's
//! (`{% end %}`); the ideas — autoescape by default, `{{ x | safe }}` to opt
//! out, `xsrf_form_html()` and `static_url()` available everywhere — are the
//! same.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{context, Environment, ErrorKind, Value};

use super::bundle::{AssetSource, Bundle};
use super::context::Ctx;
use super::handler::HTTPError;
use super::static_files::StaticFiles;

/// A minijinja environment that loads templates by name from `dir` and
/// keeps each one compiled until it is told otherwise.
///
/// minijinja's own default re-checks every cached template with a `stat` of
/// its file on each lookup (`auto_reload`): one system call per page, and
/// one per chat message for `message.html`. Tornado caches compiled
/// templates for good unless `debug` is on, and so do we: the debug path
/// clears the cache explicitly before each render instead.
pub fn file_environment(dir: PathBuf) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(minijinja::path_loader(dir));
    env.set_auto_reload(false);
    env
}

/// A minijinja environment that loads templates by name from `bundle`. A
/// template that is not UTF-8 fails to load, as a file would.
pub fn bundle_environment(bundle: Bundle) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(move |name| match bundle.find(name) {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(|text| Some(text.to_string()))
            .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())),
    });
    env
}

/// [`file_environment`] or [`bundle_environment`], as `source` says.
pub fn environment(source: AssetSource) -> Environment<'static> {
    match source {
        AssetSource::Dir(dir) => file_environment(dir),
        AssetSource::Bundled(files) => bundle_environment(files),
    }
}

/// The template environment of one application.
pub(crate) struct Templates {
    /// minijinja's environment (holds the compiled-template cache).
    env: RefCell<Environment<'static>>,
    /// Re-read templates from disk on every render.
    debug: bool,
}

impl Templates {
    /// Templates from `source`; `static_files` backs the `static_url()`
    /// function.
    pub(crate) fn new(
        source: AssetSource,
        debug: bool,
        static_files: Option<Arc<StaticFiles>>,
        static_prefix: String,
    ) -> Templates {
        // Autoescape by extension (.html/.htm/.xml → HTML) is minijinja's
        // default, as autoescape is Tornado's.
        let mut env = environment(source);
        env.add_function("static_url", move |path: String| -> Value {
            let url = match &static_files {
                Some(files) => files.static_url(&static_prefix, &path),
                None => format!("{static_prefix}{path}"),
            };
            // Escaped here (quotes, <, >, &) and marked safe, so the
            // autoescaper does not also turn every '/' into '&#x2f;'.
            Value::from_safe_string(crate::escape::xhtml_escape(&url).into_owned())
        });
        Templates {
            env: RefCell::new(env),
            debug,
        }
    }

    /// Render `name` with the handler's `context` plus the request globals.
    pub(crate) fn render(
        &self,
        cx: &Ctx,
        name: &str,
        context: serde_json::Value,
    ) -> Result<String, HTTPError> {
        let mut env = self.env.borrow_mut();
        if self.debug {
            env.clear_templates();
        }
        let template = env.get_template(name).map_err(|e| {
            log::error!("template {name}: {e:#}");
            HTTPError::new(500, format!("template {name} cannot be loaded"))
        })?;
        let user = Value::from(minijinja::value::Serde(&context));
        let ctx = context! {
            xsrf_form_html => Value::from_safe_string(cx.xsrf_form_html()),
            xsrf_token => cx.xsrf_token(),
            current_user => cx.current_user(),
            request_path => cx.request().path(),
            ..user
        };
        template.render(ctx).map_err(|e| {
            log::error!("template {name}: {e:#}");
            HTTPError::new(500, format!("template {name} failed to render"))
        })
    }
}
