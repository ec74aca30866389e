//! UDP datagrams (lesson 1.7): `udp_send` and `udp_bind`.
pub fn module() -> rhai::Module {
    rhai::Module::new()
}
