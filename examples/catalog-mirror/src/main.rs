//! Run with: cargo run -p nestor-example-catalog-mirror -- URL
//!
//! Keeps a local copy of the catalog of the Nestor server at URL (for
//! example `http://127.0.0.1:8080` after `nestor serve --catalog
//! examples/catalog`) and prints each change as it arrives; `NESTOR_TOKEN`
//! is sent when set. Publish or yank a definition meanwhile (`nestor
//! --server URL catalog yank aws-rds-mysql 2.0.0`) to see it. Stop it with
//! Ctrl-C; stopping or restarting the server does not stop it.

use nestor_example_catalog_mirror::Mirror;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: nestor-example-catalog-mirror URL")?;
    let mut client = nestor_client::Client::builder(url);
    if let Ok(token) = std::env::var("NESTOR_TOKEN") {
        client = client.token(token);
    }
    let mut mirror = Mirror::start(client.build()?).await?;
    println!("mirrored {} definitions", mirror.versions().count());
    while let Some(event) = mirror.apply_next().await {
        let event = event?;
        let name = event.subject.split(':').next().unwrap_or_default();
        match mirror.get(name) {
            Some(v) => println!(
                "#{} {} {name}: latest {}",
                event.id,
                event.event_type.as_str(),
                v.version()
            ),
            None => println!(
                "#{} {} {name}: no latest version",
                event.id,
                event.event_type.as_str()
            ),
        }
    }
    Ok(())
}
