//! `berth env`: the shell exports that point the aws CLI and the SDKs at this Berth.
//!
//! Service-specific endpoint variables (`AWS_ENDPOINT_URL_ECR`, ...), never the global
//! `AWS_ENDPOINT_URL`, which would send every AWS service (`aws s3`, `aws ecs`) here too.

use anyhow::Context as _;

use crate::bootstrap;
use crate::config::Settings;
use crate::server_record::ServerRecord;

/// The AWS services Berth answers, by the suffix of their endpoint variable.
const SERVICES: [&str; 3] = ["ECR", "IAM", "STS"];

pub fn print(settings: &Settings) -> anyhow::Result<()> {
    print!("{}", exports(settings)?);
    Ok(())
}

fn exports(settings: &Settings) -> anyhow::Result<String> {
    let record = ServerRecord::read(&settings.data_dir).with_context(|| {
        format!(
            "no server has run on {} yet: start `{} serve` first",
            settings.data_dir.display(),
            command_name()
        )
    })?;
    let (id, secret) = root_key(settings)?;
    let mut out = String::new();
    out += &format!("export AWS_ACCESS_KEY_ID={id}\n");
    out += &format!("export AWS_SECRET_ACCESS_KEY={secret}\n");
    out += "unset AWS_SESSION_TOKEN AWS_PROFILE\n";
    // The running server's region, not this command's default.
    out += &format!("export AWS_DEFAULT_REGION={}\n", record.region);
    for service in SERVICES {
        out += &format!("export AWS_ENDPOINT_URL_{service}={}\n", record.endpoint);
    }
    out += "export AWS_EC2_METADATA_DISABLED=true\n";
    Ok(out)
}

/// The default account's root key, from the credentials file the first start wrote.
fn root_key(settings: &Settings) -> anyhow::Result<(String, String)> {
    let path = settings.data_dir.join(bootstrap::CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (start `berth serve` once to create it)",
            path.display()
        )
    })?;
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    match (field("aws_access_key_id"), field("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => anyhow::bail!("{} has no default access key", path.display()),
    }
}

/// How to run this binary: `berth` when that is what the PATH finds, else its full path.
pub fn command_name() -> String {
    let Ok(me) = std::env::current_exe() else {
        return "berth".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::canonicalize(dir.join("berth"))
                .is_ok_and(|found| Some(found) == me.canonicalize().ok())
        })
    });
    if on_path {
        "berth".into()
    } else {
        me.display().to_string()
    }
}
