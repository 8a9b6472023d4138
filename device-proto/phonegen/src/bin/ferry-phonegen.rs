//! Stand-alone generator for testing: `ferry-phonegen --out DIR [options]`, the same options
//! as `ferry-sim make-phone`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ferry-phonegen",
    about = "Write a synthetic iPhone image (device.toml + Media/ + expected.json)"
)]
struct Cli {
    #[command(flatten)]
    args: ferry_phonegen::MakePhoneArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let summary = ferry_phonegen::run(&cli.args)?;
    println!("{summary}");
    Ok(())
}
