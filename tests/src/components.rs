//! Components synthesised from the WIT, for load-time checks: every export trapping, or an
//! import no host provides.

use crate::artifacts::repo_file;

/// A component of `world` whose every export traps: wit-component's dummy module for it.
fn dummy_component(resolve: &wit_parser::Resolve, world: wit_parser::WorldId) -> Vec<u8> {
    let mut module = wit_component::dummy_module(
        resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed the world");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("a core module with its world")
        .encode()
        .expect("a component")
}

fn nats_sink_wit() -> (wit_parser::Resolve, wit_parser::PackageId) {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(repo_file("wit"))
        .expect("parse wit/nats-sink.wit");
    (resolve, package)
}

/// The nats-sink world with every export trapping (`open` included).
pub fn trapping_component() -> Vec<u8> {
    let (resolve, package) = nats_sink_wit();
    let world = resolve
        .select_world(&[package], Some("connector"))
        .expect("the nats-sink world");
    dummy_component(&resolve, world)
}

/// The nats-sink world plus an import no host of ours provides (`hostile:extra/clock`).
pub fn component_with_extra_import() -> Vec<u8> {
    let (mut resolve, sink_package) = nats_sink_wit();
    let extra = resolve
        .push_str(
            "extra.wit",
            "package hostile:extra;\n\
             interface clock { now: func() -> u64; }\n\
             world with-extra-import {\n\
               include nats:sink/connector@0.4.0;\n\
               import clock;\n\
             }\n",
        )
        .expect("parse the extra world");
    let world = resolve
        .select_world(
            &[extra, sink_package],
            Some("hostile:extra/with-extra-import"),
        )
        .expect("the extra world");
    dummy_component(&resolve, world)
}
