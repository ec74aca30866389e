//! The plugin boundary: what happens when a call crosses from a script into
//! a plugin's function and back.
//!
//! Each public function of a plugin is registered through a wrapper
//! ([`wrap`]) that
//! - runs the plugin's function inside the plugin's permit [`Context`]
//!   (while permissions are enforced), so a `services::` helper is held to
//!   what `services.rhai` states, whatever the script that calls it holds;
//!   closures the plugin hands to netsh (`serve`, `task`) keep that context
//!   through `runtime::closure::Callback`;
//! - *seals* the closures it returns, also inside arrays and maps. A Rhai
//!   closure is a pointer to an anonymous function of the plugin's code,
//!   which the calling script cannot see (Rhai said `no function anon$…`),
//!   and which would otherwise run with the caller's permissions. A sealed
//!   closure is a native function pointer that calls the original with the
//!   plugin's functions and inside the plugin's context, so
//!   `let add = mk::adder(2); add.call(3)` works, and a route map a plugin
//!   builds can be handed to a server, still held to the plugin's grant.

use std::sync::Arc;

use rhai::{
    AST, Array, Dynamic, EvalAltResult, FnPtr, FuncRegistration, Map, Module, NativeCallContext,
    Scope,
};

use crate::permit::Context;

/// The most parameters a plugin function may take (its wrapper is made per
/// arity); a function needing more takes a map.
const MAX_PARAMS: usize = 8;

/// `module` (the plugin `plugin`'s, made from its code) with each of its
/// functions (`functions`: name and parameter names) called through the
/// boundary in `context`; its variables and sub-modules as they were.
pub fn wrap(
    module: Arc<Module>,
    functions: &[(String, Vec<String>)],
    plugin: &str,
    context: &Context,
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
        let sub = wrap(sub.clone(), &functions, plugin, context)?;
        wrapped.set_sub_module(name, sub);
    }
    let ast = Arc::new(AST::new_from_module(module.clone()));
    for (name, params) in functions {
        let call = Call {
            ast: ast.clone(),
            name: name.clone(),
            context: context.clone(),
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
                    "plugin {plugin}: {name} takes more than {MAX_PARAMS} parameters; pass a map instead"
                ));
            }
        };
    }
    Ok(wrapped)
}

/// The functions a module's code may call from outside it: their names
/// and parameter names (closures are not called by name, so not listed).
pub fn public_functions(ast: &AST) -> Vec<(String, Vec<String>)> {
    ast.iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private && !is_closure(f.name))
        .map(|f| {
            let params = f.params.iter().map(|p| p.to_string()).collect();
            (f.name.to_string(), params)
        })
        .collect()
}

/// Rhai names the function behind a closure `anon$<hash>`.
fn is_closure(name: &str) -> bool {
    name.starts_with("anon$")
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
        let returned = self.context.enter(|| {
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
        })?;
        Ok(seal(returned, &self.ast, &self.context))
    }
}

/// `value` with every closure of the plugin's code in it sealed.
fn seal(value: Dynamic, ast: &Arc<AST>, context: &Context) -> Dynamic {
    // A shared value (a variable a closure captured) is left as it is unless
    // it holds a closure: reading it out would end the sharing.
    if value.is_shared() {
        let inner = value.flatten_clone();
        return if holds_closure(&inner) {
            seal(inner, ast, context)
        } else {
            value
        };
    }
    if value.is_fnptr() {
        return match value.try_cast::<FnPtr>() {
            Some(f) => sealed(f, ast, context),
            None => Dynamic::UNIT,
        };
    }
    if value.is_array() {
        let array: Array = value
            .into_array()
            .unwrap_or_default()
            .into_iter()
            .map(|v| seal(v, ast, context))
            .collect();
        return array.into();
    }
    if value.is_map() {
        let map: Map = value
            .try_cast::<Map>()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, seal(v, ast, context)))
            .collect();
        return map.into();
    }
    value
}

fn holds_closure(value: &Dynamic) -> bool {
    if value.is_fnptr() {
        return true;
    }
    if let Some(array) = value.read_lock::<Array>() {
        return array.iter().any(holds_closure);
    }
    if let Some(map) = value.read_lock::<Map>() {
        return map.values().any(holds_closure);
    }
    false
}

/// `f` as a native function pointer that calls it with the plugin's
/// functions, in the plugin's context; `f` itself when it is not the
/// plugin's (`Fn("print")` is callable anywhere as it is).
fn sealed(f: FnPtr, ast: &Arc<AST>, context: &Context) -> Dynamic {
    let Some(declared) = ast
        .iter_functions()
        .find(|d| d.name == f.fn_name())
        .map(|d| d.params.len())
    else {
        return f.into();
    };
    let own = declared.saturating_sub(f.curry().len());
    let (ast, context) = (ast.clone(), context.clone());
    let call = move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| {
        if args.len() != own {
            return Err(format!(
                "this closure takes {own} parameter{}, not {}",
                if own == 1 { "" } else { "s" },
                args.len()
            )
            .into());
        }
        let args: Vec<Dynamic> = args.iter_mut().map(|a| std::mem::take(&mut **a)).collect();
        let returned = context.enter(|| f.call::<Dynamic>(ctx.engine(), &ast, args))?;
        Ok(seal(returned, &ast, &context))
    };
    // `from_fn` is marked deprecated only as "volatile"; it is the way to
    // make a native function pointer.
    #[allow(deprecated)]
    let sealed = FnPtr::from_fn("closure", call);
    match sealed {
        Ok(sealed) => sealed.into(),
        Err(_) => Dynamic::UNIT,
    }
}
