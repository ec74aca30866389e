//! The Rhai side of permissions: `permissions()`, the `//! permissions:`
//! statement of a plugin or scenario, and the plugin boundary.
//!
//! The checks themselves are `crate::permit`'s, made by every capability.
//! What this file adds is *who* is asking: while permissions are enforced,
//! each function of a plugin is registered through a wrapper that runs the
//! plugin's own function inside the plugin's [`Context`], so a
//! `services::` helper is held to what `services.rhai` states, whatever
//! the script that calls it holds. Closures the plugin makes keep that
//! context (`runtime::closure::Callback`), so its servers and tasks do too.

use std::sync::Arc;

use rhai::{AST, Dynamic, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext, Scope};

use crate::permit::{self, Context, Grant, Held, List};

/// The text after `//! permissions:` in a file's opening comment, if any.
pub fn stated(text: &str) -> Option<&str> {
    text.lines()
        .skip_while(|l| l.starts_with("#!"))
        .map(str::trim)
        .take_while(|l| l.starts_with("//"))
        .filter_map(|l| l.strip_prefix("//!"))
        .find_map(|l| l.trim().strip_prefix("permissions:"))
        .map(str::trim)
}

/// A file's statement as a grant: none stated is nothing granted. Paths
/// are the starting folder's.
pub fn grant_of(text: &str) -> Result<Grant, String> {
    let base = std::env::current_dir().unwrap_or_else(|_| "/".into());
    match stated(text) {
        None => Ok(Grant::none()),
        Some(statement) => Grant::parse_statement(statement, &base),
    }
}

/// The most parameters a plugin function may take to be held to its
/// statement (its wrapper is made per arity).
const MAX_PARAMS: usize = 8;

/// `module` with each of its functions (`functions`: name and parameter
/// names, from the plugin's AST) run in `held`'s context; its variables
/// and sub-modules as they were.
pub fn held_module(
    module: Arc<Module>,
    functions: &[(String, Vec<String>)],
    held: Arc<Held>,
) -> Result<Module, String> {
    let mut wrapped = Module::new();
    if let Some(id) = module.id() {
        wrapped.set_id(id);
    }
    for (name, value) in module.iter_var() {
        wrapped.set_var(name, value.clone());
    }
    // A module the plugin imported (`import "x" as inner` at its top) is
    // its code too: `plugin::inner::f()` is held like `plugin::f()`.
    for (name, sub) in module.iter_sub_modules() {
        let functions = public_functions(&AST::new_from_module(sub.clone()));
        let sub = held_module(sub.clone(), &functions, held.clone())?;
        wrapped.set_sub_module(name, sub);
    }
    let ast = Arc::new(AST::new_from_module(module.clone()));
    for (name, params) in functions {
        let call = Call {
            ast: ast.clone(),
            name: name.clone(),
            context: Context::plugin(held.clone()),
        };
        // Parameter names as the plugin wrote them, for the REPL's hints.
        let reg = FuncRegistration::new(name.as_str())
            .in_internal_namespace()
            .with_params_info(params.iter().map(String::as_str).chain(["Dynamic"]));
        macro_rules! arity {
            ($($a:ident),*) => {
                reg.set_into_module(&mut wrapped, move |ctx: NativeCallContext, $($a: Dynamic),*| {
                    call.run(&ctx, vec![$($a),*])
                })
            };
        }
        match params.len() {
            0 => arity!(),
            1 => arity!(a),
            2 => arity!(a, b),
            3 => arity!(a, b, c),
            4 => arity!(a, b, c, d),
            5 => arity!(a, b, c, d, e),
            6 => arity!(a, b, c, d, e, f),
            7 => arity!(a, b, c, d, e, f, g),
            8 => arity!(a, b, c, d, e, f, g, h),
            _ => {
                return Err(format!(
                    "plugin {}: {name} takes more than {MAX_PARAMS} parameters, so it cannot be held to its permissions",
                    held.plugin
                ));
            }
        };
    }
    Ok(wrapped)
}

/// The functions a module's code may call from outside it: their names
/// and parameter names.
pub fn public_functions(ast: &AST) -> Vec<(String, Vec<String>)> {
    ast.iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private)
        .map(|f| {
            let params = f.params.iter().map(|p| p.to_string()).collect();
            (f.name.to_string(), params)
        })
        .collect()
}

/// One plugin function, called in its plugin's context.
struct Call {
    ast: Arc<AST>,
    name: String,
    context: Context,
}

impl Call {
    fn run(
        &self,
        ctx: &NativeCallContext,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        self.context.enter(|| {
            let options = rhai::CallFnOptions::new()
                .eval_ast(false)
                .rewind_scope(true);
            ctx.engine().call_fn_with_options(
                options,
                &mut Scope::new(),
                &self.ast,
                &self.name,
                args,
            )
        })
    }
}

/// A grant as a script reads it: `#{enforced, net, read, write, env,
/// capture}`, each list `"all"` or an array of its items.
pub fn as_map(grant: &Grant, enforced: bool) -> Map {
    fn list<T>(l: &List<T>, show: impl Fn(&T) -> String) -> Dynamic {
        match l {
            List::All => "all".into(),
            List::Only(items) => items
                .iter()
                .map(|i| Dynamic::from(show(i)))
                .collect::<rhai::Array>()
                .into(),
        }
    }
    let mut m = Map::new();
    m.insert("enforced".into(), enforced.into());
    m.insert("net".into(), list(&grant.net, ToString::to_string));
    m.insert(
        "read".into(),
        list(&grant.read, |p| p.display().to_string()),
    );
    m.insert(
        "write".into(),
        list(&grant.write, |p| p.display().to_string()),
    );
    m.insert("env".into(), list(&grant.env, Clone::clone));
    m.insert("capture".into(), grant.capture.into());
    m.insert("text".into(), grant.to_string().into());
    m
}

/// What `permissions()` returns.
pub fn session_map() -> Map {
    as_map(&permit::session(), permit::enforced())
}

/// `permissions()` for Rhai.
pub fn module() -> Module {
    rhai::exported_module!(api)
}

#[rhai::plugin::export_module]
mod api {
    use rhai::Map;

    /// What this session may do now: `#{enforced, net, read, write, env,
    /// capture, text}`. Each of net, read, write and env is `"all"` or an
    /// array of what is granted; `enforced` is false when netsh runs
    /// without a permission flag (everything allowed, as always).
    ///
    /// ```rhai
    /// let p = permissions(); if p.enforced { print(p.text) }
    /// ```
    ///
    /// Fails when: never.
    pub fn permissions() -> Map {
        super::session_map()
    }
}

/// Rhai's own `import "x"` reads `x.rhai` from disk: under permissions it
/// is a read like any other, checked before the file is opened.
pub struct CheckedImports(rhai::module_resolvers::FileModuleResolver);

impl CheckedImports {
    pub fn new() -> CheckedImports {
        CheckedImports(rhai::module_resolvers::FileModuleResolver::new())
    }

    fn check(&self, source: Option<&str>, path: &str) -> Result<(), Box<EvalAltResult>> {
        // As Rhai's resolver reads it: beside the importing file.
        let beside = source.and_then(|s| std::path::Path::new(s).parent());
        let file = self.0.get_file_path(path, beside);
        permit::read(&file).map_err(crate::error::fail("import"))
    }
}

impl Default for CheckedImports {
    fn default() -> Self {
        CheckedImports::new()
    }
}

impl rhai::ModuleResolver for CheckedImports {
    fn resolve(
        &self,
        engine: &rhai::Engine,
        source: Option<&str>,
        path: &str,
        pos: rhai::Position,
    ) -> Result<Arc<Module>, Box<EvalAltResult>> {
        self.check(source, path)?;
        self.0.resolve(engine, source, path, pos)
    }
}
