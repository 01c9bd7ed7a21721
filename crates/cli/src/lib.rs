//! `arca`: the command-line client. It talks to arcad over the Docker Engine API (bollard as
//! the client library), with docker's verbs, flags, tables and exit codes: 125 when the
//! daemon reports an error, 126 when the command cannot be invoked, 127 when it is not
//! found, else the container's own status.

mod attach;
mod client;
mod commands;
mod cp;
mod create_opts;
mod credhelper;
mod df;
mod events;
mod exec;
mod export;
mod format;
mod image_cmds;
mod login;
mod logs;
mod manage;
mod network;
mod network_opts;
mod parse;
mod ports;
mod prune;
mod pull;
mod push;
mod run;
mod search;
mod session;
mod stats;
mod template;
mod volume;

use clap::{Parser, Subcommand};

pub use client::Cli as Client;

/// Exit code for errors from the daemon or the client itself (docker's 125).
pub const EXIT_DAEMON: i32 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "arca",
    version,
    about = "Run containers with arca",
    disable_help_subcommand = true
)]
pub struct Args {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long = "host", env = "ARCA_HOST", global = true, default_value = client::DEFAULT_HOST)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image
    Run(Box<run::RunArgs>),
    /// Create a new container
    Create(Box<run::CreateArgs>),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// List containers
    Ps(commands::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Start one or more stopped containers
    Start(attach::StartArgs),
    /// Stop one or more running containers
    Stop(commands::StopArgs),
    /// Kill one or more running containers
    Kill(commands::KillArgs),
    /// Remove one or more containers
    Rm(commands::RmArgs),
    /// Pause all processes within one or more containers
    Pause(manage::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(manage::NamesArgs),
    /// Update configuration of one or more containers
    Update(manage::UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(manage::NamesArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(manage::DiffArgs),
    /// List port mappings or a specific mapping for the container
    Port(manage::PortArgs),
    /// Display the running processes of a container
    Top(manage::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Rename a container
    Rename(commands::RenameArgs),
    /// Return low-level information on containers or images
    Inspect(commands::InspectArgs),
    /// List images
    Images(commands::ImagesArgs),
    /// Remove one or more images
    Rmi(commands::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(commands::TagArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Authenticate to a registry
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Load an image from a tar archive or STDIN
    Load(commands::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(commands::ImportArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Create a new image from a container's changes
    Commit(image_cmds::CommitArgs),
    /// Show the history of an image
    History(image_cmds::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image_cmds::SaveArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Search Docker Hub for images
    Search(search::SearchArgs),
    /// Manage containers
    Container(prune::ContainerArgs),
    /// Manage images
    Image(image_cmds::ImageArgs),
    /// Manage networks
    Network(network::NetworkArgs),
    /// Manage volumes
    Volume(volume::VolumeArgs),
    /// Manage arca
    System(image_cmds::SystemArgs),
    /// Show the arca version information
    Version,
    /// Display system-wide information
    Info,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`arca ps | head`); Rust ignores SIGPIPE by default and would panic on the write.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    // logout only edits the client's config.json: it needs no daemon (as with docker).
    let args = match args.command {
        Command::Logout(a) => {
            return login::logout(a).unwrap_or_else(|e| {
                eprintln!("arca: {e:#}");
                1
            });
        }
        command => Args { command, ..args },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: cannot start: {e}");
            return EXIT_DAEMON;
        }
    };
    let code = rt.block_on(async move {
        let cli = match client::Cli::connect(&args.host) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_DAEMON;
            }
        };
        // docker's statuses: `run` and `create` report daemon errors as 125 (126/127 when
        // the command cannot be run), `exec` passes 126/127 on, other verbs exit 1.
        let exit_code: fn(&anyhow::Error) -> i32 = match &args.command {
            Command::Run(_) => client::exit_code_for,
            Command::Exec(_) => |e| match client::exit_code_for(e) {
                c @ (126 | 127) => c,
                _ => client::plain_exit_code(e),
            },
            Command::Create(_) => |e| match e.downcast_ref::<client::Plain>() {
                Some(p) => p.code,
                None => 1,
            },
            _ => client::plain_exit_code,
        };
        let result = match args.command {
            Command::Run(a) => run::run(&cli, *a).await,
            Command::Create(a) => run::create_cmd(&cli, *a).await,
            Command::Attach(a) => attach::attach(&cli, a).await,
            Command::Exec(a) => exec::exec(&cli, a).await,
            Command::Ps(a) => commands::ps(&cli, a).await,
            Command::Logs(a) => logs::logs(&cli, a).await,
            Command::Start(a) => attach::start(&cli, a).await,
            Command::Pause(a) => manage::pause(&cli, a).await,
            Command::Unpause(a) => manage::unpause(&cli, a).await,
            Command::Update(a) => manage::update(&cli, a).await,
            Command::Wait(a) => manage::wait(&cli, a).await,
            Command::Diff(a) => manage::diff(&cli, a).await,
            Command::Port(a) => manage::port(&cli, a).await,
            Command::Top(a) => manage::top(&cli, a).await,
            Command::Stats(a) => stats::stats(&cli, a).await,
            Command::Stop(a) => commands::stop(&cli, a).await,
            Command::Kill(a) => commands::kill(&cli, a).await,
            Command::Rm(a) => commands::rm(&cli, a).await,
            Command::Rename(a) => commands::rename(&cli, a).await,
            Command::Inspect(a) => commands::inspect(&cli, a).await,
            Command::Images(a) => commands::images(&cli, a).await,
            Command::Rmi(a) => commands::rmi(&cli, a).await,
            Command::Tag(a) => commands::tag(&cli, a).await,
            Command::Pull(a) => pull::pull(&cli, a).await,
            Command::Push(a) => push::push(&cli, a).await,
            Command::Login(a) => login::login(&cli, a).await,
            Command::Logout(_) => unreachable!("handled before connecting"),
            Command::Load(a) => commands::load(&cli, a).await,
            Command::Import(a) => commands::import(&cli, a).await,
            Command::Events(a) => events::events(&cli, a).await,
            Command::Commit(a) => image_cmds::commit(&cli, a).await,
            Command::History(a) => image_cmds::history(&cli, a).await,
            Command::Save(a) => image_cmds::save(&cli, a).await,
            Command::Cp(a) => cp::cp(&cli, a).await,
            Command::Export(a) => export::export(&cli, a).await,
            Command::Search(a) => search::search(&cli, a).await,
            Command::Container(a) => prune::container(&cli, a).await,
            Command::Image(a) => image_cmds::image(&cli, a).await,
            Command::Network(a) => network::network(&cli, a).await,
            Command::Volume(a) => volume::volume(&cli, a).await,
            Command::System(a) => image_cmds::system(&cli, a).await,
            Command::Version => commands::version(&cli).await,
            Command::Info => commands::info(&cli).await,
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{}", client::describe(&e, &cli));
                exit_code(&e)
            }
        }
    });
    // A blocking stdin read may still be pending (interactive sessions); do not wait for it.
    rt.shutdown_background();
    code
}
