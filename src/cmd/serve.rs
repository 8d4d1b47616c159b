//! `chatprobe testbed` and `chatprobe xmpp`: serve a platform until Ctrl-C.

use anyhow::Context;

use super::cli::{TestbedArgs, XmppArgs};
use super::shutdown_signal;

pub(super) fn testbed(args: TestbedArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let mut config = crate::testbed::Config::new(&args.policy, &args.accounts);
        config.addr = args.addr;
        config.allow_remote = args.allow_remote;
        config.truth = args.truth;
        config.max_upload = usize::from(args.max_upload_mib) * 1024 * 1024;
        config.state = args.state;
        config.no_ids = args.no_ids;
        config.thumbnails = args.thumbnails;
        let tb = crate::testbed::Testbed::start(&config).await?;
        println!("listening on {}", tb.url());
        eprintln!("policy `{}`; Ctrl-C stops", tb.engine.policy().name);
        shutdown_signal().await;
        tb.stop().await;
        Ok(())
    })
}

pub(super) fn xmpp(args: XmppArgs) -> anyhow::Result<()> {
    let cfg = crate::targets::xmpp::Config {
        accounts: args.accounts,
        keywords: args.keywords,
        converse: args.converse,
        dir: args.dir,
        domain: args.domain,
        roster: !args.no_roster,
    };
    let target = crate::targets::xmpp::Xmpp::start(&cfg)?;
    println!("listening on {}", target.url());
    eprintln!(
        "Converse at {0}/files/index.html (fullscreen) and {0}/files/overlayed.html (overlayed); Prosody's log: {1}; Ctrl-C stops",
        target.url(),
        target.dir().join("prosody.log").display()
    );
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(shutdown_signal());
    drop(target);
    Ok(())
}
