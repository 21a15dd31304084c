//! `componentize CORE.wasm OUT.wasm`: wrap a core module built with wit-bindgen into a
//! component. The module carries its WIT in a custom section, so no WIT path is needed.

use anyhow::{bail, Context, Result};
use wit_component::ComponentEncoder;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: componentize CORE.wasm OUT.wasm");
    };
    let module = std::fs::read(input).with_context(|| format!("reading core module {input}"))?;
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .with_context(|| format!("{input} is not a core module with a component-type section"))?
        .encode()
        .context("encoding the component")?;
    // An unchanged component keeps its file (and mtime), so what embeds it is not rebuilt.
    if std::fs::read(output).is_ok_and(|old| old == component) {
        return Ok(());
    }
    std::fs::write(output, &component).with_context(|| format!("writing {output}"))?;
    println!("componentize: {output} ({} bytes)", component.len());
    Ok(())
}
