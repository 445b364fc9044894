//! Prints every registered network with its trainable parameters and forward GMACs.
//!
//! `cargo run -p lmsoftmax-models --example list_models`

fn main() {
    println!(
        "{:<18} {:>7} {:>13} {:>13} {:>8}",
        "name", "classes", "parameters", "input", "GMAC"
    );
    for info in lmsoftmax_models::list() {
        let [c, h, w] = info.input;
        println!(
            "{:<18} {:>7} {:>13} {:>13} {:>8.3}",
            info.name,
            info.num_classes,
            info.parameters,
            format!("{c}x{h}x{w}"),
            info.gmacs
        );
    }
}
