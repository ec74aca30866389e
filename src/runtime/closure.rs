//! Rhai closures handed to netsh functions, callable later and from any
//! thread: `task(|| …)`, `serve(port, |c| …)`, event handlers, callbacks.
//!
//! Two things make that work. A closure can only be called with the functions
//! of the code that defined it, so the engine carries a [`Host`] (its default
//! tag) recording the AST being run, and a [`Callback`] keeps engine and AST.
//! And a closure *captures by value*: Rhai shares each captured variable with
//! the closure through a lock, and a native method called on a shared
//! variable holds that lock for the whole call, so a task that captured `l`
//! waited forever for the main thread's `l.accept()` (or Rhai reported "Data
//! race detected"). [`Callback::new`] gives the closure copies instead;
//! handles (`Conn`, `Listener`…) are shared references inside, so a copy is
//! the same socket. State meant to be shared goes through `share()` or
//! `channel()`, explicitly.

use std::{
    any::Any,
    sync::{Arc, OnceLock, RwLock, Weak},
};

use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};

use crate::error::{Error, Result};

/// What native functions need to call closures later: the engine and the
/// AST being run. It is the engine's default tag; the shell hangs its own
/// session data (plugins, help) on it as `extension`.
#[derive(Clone, Default)]
pub struct Host(Arc<HostState>);

#[derive(Default)]
struct HostState {
    engine: OnceLock<Weak<Engine>>,
    ast: RwLock<Arc<AST>>,
    extension: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Host {
    /// The host of the engine running this native call.
    pub fn of(ctx: &NativeCallContext) -> Option<Host> {
        // The tag may be shared (the shell's is): read it in place.
        ctx.tag()?.read_lock::<Host>().map(|host| host.clone())
    }

    /// Ties the host to its engine (once, after the engine is built).
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.0.engine.set(Arc::downgrade(engine));
    }

    /// Records the AST being run, so closures it defines can be called later.
    pub fn set_ast(&self, ast: &AST) {
        let mut functions_only = ast.clone_functions_only();
        functions_only.set_source(ast.source().unwrap_or_default());
        if let Ok(mut slot) = self.0.ast.write() {
            *slot = Arc::new(functions_only);
        }
    }

    /// The engine, if it is still alive.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.0.engine.get()?.upgrade()
    }

    /// The AST of what is running now (its functions, not its statements).
    pub fn ast(&self) -> Arc<AST> {
        self.0
            .ast
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::new(AST::empty()))
    }

    /// Sets the data another layer keeps with the host (once).
    pub fn set_extension(&self, extension: Arc<dyn Any + Send + Sync>) {
        let _ = self.0.extension.set(extension);
    }

    /// That data, if it is of type `T`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0.extension.get()?.clone().downcast::<T>().ok()
    }
}

/// Calls a Rhai closure with these arguments.
type CallFn = dyn Fn(Args) -> std::result::Result<Dynamic, Box<EvalAltResult>> + Send + Sync;

/// A call's arguments: one (a handler's `req`, called per request) is
/// passed without a vector allocated for it.
enum Args {
    One(Dynamic),
    Many(Vec<Dynamic>),
}

/// A Rhai closure that any thread can call, holding its own copies of what it
/// captured, with the name of the source that defined it (for messages).
#[derive(Clone)]
pub struct Callback {
    call: Arc<CallFn>,
    source: Arc<str>,
}

impl Callback {
    /// Prepares `f` to be called later, on any thread, with `params` (their
    /// names, for the message when the closure takes a different number).
    ///
    /// `role` names it in that message: `"the handler"`, `"on_line"`.
    pub fn new(ctx: &NativeCallContext, f: FnPtr, role: &str, params: &[&str]) -> Result<Self> {
        let host = Host::of(ctx).ok_or_else(unavailable)?;
        let engine = host.engine().ok_or_else(unavailable)?;
        let main_ast = host.ast();
        let name = f.fn_name().to_string();
        let curried = f.curry().len();
        let (ast, source, declared) = match declared_params(&main_ast, &name) {
            Some(count) => {
                let source = main_ast.source().unwrap_or("script").into();
                (main_ast, source, Some(count))
            }
            // A closure made inside a plugin function (`echo::serve`) belongs
            // to that plugin's module, which is among the namespaces of the
            // current call: call it with that module as its AST.
            None => match defining_module(ctx, &name) {
                Some((module, count)) => {
                    let source: Arc<str> = module.id().unwrap_or("plugin").into();
                    (Arc::new(AST::new_from_module(module)), source, Some(count))
                }
                // A pointer to a native function (`Fn("print")`): Rhai checks
                // its arguments when it is called.
                None => (
                    main_ast.clone(),
                    main_ast.source().unwrap_or("script").into(),
                    None,
                ),
            },
        };
        check_count(declared, curried, role, params)?;
        let f = detached_fn(f);
        // The closure keeps the permissions of the code that made it: a
        // plugin's server handler stays held to that plugin's statement on
        // whichever thread calls it.
        let permit = crate::permit::Context::current();
        Ok(Callback {
            source,
            call: Arc::new(move |args| {
                permit.enter(|| match args {
                    Args::One(arg) => f.call::<Dynamic>(&engine, &ast, (arg,)),
                    Args::Many(args) => f.call::<Dynamic>(&engine, &ast, args),
                })
            }),
        })
    }

    /// A callback that returns `()`, for unit tests of what holds one.
    #[cfg(test)]
    pub fn native_for_tests() -> Callback {
        Callback {
            call: Arc::new(|_| Ok(Dynamic::UNIT)),
            source: "test".into(),
        }
    }

    /// Calls the closure on this thread.
    pub fn call(&self, args: Vec<Dynamic>) -> std::result::Result<Dynamic, Box<EvalAltResult>> {
        (self.call)(Args::Many(args))
    }

    /// Calls the closure on this thread with one argument.
    pub fn call1(&self, arg: Dynamic) -> std::result::Result<Dynamic, Box<EvalAltResult>> {
        (self.call)(Args::One(arg))
    }

    /// The source name of the code that defined the closure, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Refuses `f` at once when it takes another number of parameters than
/// `params`, for a closure called later on this thread (a progress
/// callback, `update`); a native function pointer is left to Rhai.
pub fn check_params(ctx: &NativeCallContext, f: &FnPtr, role: &str, params: &[&str]) -> Result<()> {
    let name = f.fn_name();
    let declared = Host::of(ctx)
        .and_then(|host| declared_params(&host.ast(), name))
        .or_else(|| defining_module(ctx, name).map(|(_, count)| count));
    check_count(declared, f.curry().len(), role, params)
}

/// A closure declares its captured variables (`curried`) as parameters
/// before its own; what is left must match `params`. `None`: not a script
/// function, so Rhai checks when it is called.
fn check_count(declared: Option<usize>, curried: usize, role: &str, params: &[&str]) -> Result<()> {
    match declared.map(|d| d.saturating_sub(curried)) {
        Some(own) if own != params.len() => Err(wrong_arity(role, params, own)),
        _ => Ok(()),
    }
}

fn unavailable() -> Error {
    Error::invalid("closures cannot run in the background here")
}

/// `serve: the handler takes 1 parameter (conn), this one takes 0`.
fn wrong_arity(role: &str, params: &[&str], own: usize) -> Error {
    let wanted = match params {
        [] => "no parameters".to_string(),
        [one] => format!("1 parameter ({one})"),
        many => format!("{} parameters ({})", many.len(), many.join(", ")),
    };
    let example = format!("|{}| {{ … }}", params.join(", "));
    Error::invalid(format!(
        "{role} takes {wanted}, this one takes {own}: write it as {example}"
    ))
}

/// How many parameters (captured ones included) the script function `name`
/// of `ast` declares.
fn declared_params(ast: &AST, name: &str) -> Option<usize> {
    ast.iter_functions()
        .find(|f| f.name == name)
        .map(|f| f.params.len())
}

/// The namespace among this call's that defines the script function `name`.
fn defining_module(ctx: &NativeCallContext, name: &str) -> Option<(rhai::Module, usize)> {
    // A closure's parameters are its captured variables plus its own; its
    // name is unique, so the first count that finds it is the count.
    ctx.iter_namespaces().find_map(|module| {
        (0..=64)
            .find(|&params| module.get_script_fn(name, params).is_some())
            .map(|params| (module.clone(), params))
    })
}

/// `f` with its own copies of what it captured: for a closure called later
/// or elsewhere (a callback), so it never shares a locked variable.
pub fn detached_fn(mut f: FnPtr) -> FnPtr {
    for value in f.iter_curry_mut() {
        *value = detached(value);
    }
    f
}

/// A copy of `value` that shares no Rhai cell with anything: shared
/// variables are read out, and arrays, maps and closures inside are copied
/// the same way. Handles stay handles (their `Arc`s are cloned).
pub fn detached(value: &Dynamic) -> Dynamic {
    let value = value.flatten_clone();
    if value.is_array() {
        let array: Array = value
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(detached)
            .collect();
        array.into()
    } else if value.is_map() {
        let map: Map = value
            .try_cast::<Map>()
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k.clone(), detached(v)))
            .collect();
        map.into()
    } else if value.is_fnptr() {
        match value.try_cast::<FnPtr>() {
            Some(f) => Dynamic::from(detached_fn(f)),
            None => Dynamic::UNIT,
        }
    } else {
        value
    }
}
