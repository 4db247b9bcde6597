//! The flags of `akihabara wallet …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::{PasswordArgs, WalletArgs};

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a wallet: a coldkey (encrypted unless --no-password) and one hotkey
    #[command(
        after_help = "The mnemonics are shown once, on standard error: write them down.\n\
Example:\n  akihabara wallet create --wallet.name miner --wallet.hotkey default"
    )]
    Create(CreateArgs),
    /// Add a hotkey (plaintext, as btcli writes hotkeys) to a wallet
    NewHotkey(NewHotkeyArgs),
    /// Restore a coldkey from its mnemonic
    RegenColdkey(RegenColdkeyArgs),
    /// Restore a hotkey from its mnemonic, or make one from a dev URI (//validator1)
    #[command(
        after_help = "Examples:\n  akihabara wallet regen-hotkey --mnemonic \"word1 word2 ...\"\n  \
akihabara wallet regen-hotkey --uri //validator1 --wallet.hotkey v1   (local chains only)"
    )]
    RegenHotkey(RegenHotkeyArgs),
    /// List the wallets and hotkeys under --wallet.path
    List(ListArgs),
    /// Show a wallet's addresses (public files only; never asks for a password)
    Show(ShowArgs),
    /// Sign a message with the hotkey (or --coldkey)
    Sign(SignArgs),
    /// Check a signature: exit 0 when valid, 1 when not
    Verify(VerifyArgs),
}

/// `akihabara wallet create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Leave the coldkey unencrypted (not recommended outside tests)
    #[arg(long)]
    pub no_password: bool,
    /// Words in each new mnemonic: 12, 15, 18, 21 or 24
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub words: usize,
    /// Replace existing keyfiles
    #[arg(long)]
    pub overwrite: bool,
    /// Print the wallet summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet new-hotkey`.
#[derive(Debug, Args)]
pub struct NewHotkeyArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Words in the new mnemonic: 12, 15, 18, 21 or 24
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub words: usize,
    /// Replace an existing hotkey
    #[arg(long)]
    pub overwrite: bool,
    /// Print the wallet summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet regen-coldkey`.
#[derive(Debug, Args)]
pub struct RegenColdkeyArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The mnemonic, quoted; `-` reads it from standard input
    #[arg(long, value_name = "WORDS")]
    pub mnemonic: String,
    /// Leave the coldkey unencrypted
    #[arg(long)]
    pub no_password: bool,
    /// Replace existing keyfiles
    #[arg(long)]
    pub overwrite: bool,
    /// Print the wallet summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet regen-hotkey`.
#[derive(Debug, Args)]
pub struct RegenHotkeyArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// The mnemonic, quoted; `-` reads it from standard input
    #[arg(
        long,
        value_name = "WORDS",
        required_unless_present = "uri",
        conflicts_with = "uri"
    )]
    pub mnemonic: Option<String>,
    /// A Substrate secret URI such as //Alice or //validator1
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// Replace an existing hotkey
    #[arg(long)]
    pub overwrite: bool,
    /// Print the wallet summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Directory holding the wallets
    #[arg(long = "wallet.path", value_name = "DIR", default_value = akihabara_core::wallet::DEFAULT_WALLET_PATH)]
    pub path: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Print JSON: {"name", "path", "coldkeypub", "hotkeys": [{"name", "ss58"}]}
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The message; its UTF-8 bytes are signed
    #[arg(long, value_name = "TEXT")]
    pub message: String,
    /// Sign with the coldkey (asks for its password) instead of the hotkey
    #[arg(long)]
    pub coldkey: bool,
    /// Print {"ss58", "message", "signature"}
    #[arg(long)]
    pub json: bool,
}

/// `akihabara wallet verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signer's address
    #[arg(long, value_name = "SS58")]
    pub ss58: String,
    /// The message that was signed
    #[arg(long, value_name = "TEXT")]
    pub message: String,
    /// The signature, hex (0x optional)
    #[arg(long, value_name = "HEX")]
    pub signature: String,
}
