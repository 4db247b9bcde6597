//! The flags of `akihabara wallet …`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::args::{PasswordArgs, WalletArgs};

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a wallet: a coldkey (encrypted unless --no-password) and one hotkey
    #[command(
        after_help = "The mnemonics are shown once, on standard error: write them down.\n\
Example:\n  akihabara wallet create --wallet.name miner --wallet.hotkey default"
    )]
    Create {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Leave the coldkey unencrypted (not recommended outside tests)
        #[arg(long)]
        no_password: bool,
        /// Words in each new mnemonic: 12, 15, 18, 21 or 24
        #[arg(long, value_name = "N", default_value_t = 12)]
        words: usize,
        /// Replace existing keyfiles
        #[arg(long)]
        overwrite: bool,
        /// Print the wallet summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add a hotkey (plaintext, as btcli writes hotkeys) to a wallet
    NewHotkey {
        #[command(flatten)]
        wallet: WalletArgs,
        /// Words in the new mnemonic: 12, 15, 18, 21 or 24
        #[arg(long, value_name = "N", default_value_t = 12)]
        words: usize,
        /// Replace an existing hotkey
        #[arg(long)]
        overwrite: bool,
        /// Print the wallet summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Restore a coldkey from its mnemonic
    RegenColdkey {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// The mnemonic, quoted; `-` reads it from standard input
        #[arg(long, value_name = "WORDS")]
        mnemonic: String,
        /// Leave the coldkey unencrypted
        #[arg(long)]
        no_password: bool,
        /// Replace existing keyfiles
        #[arg(long)]
        overwrite: bool,
        /// Print the wallet summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Restore a hotkey from its mnemonic, or make one from a dev URI (//validator1)
    #[command(
        after_help = "Examples:\n  akihabara wallet regen-hotkey --mnemonic \"word1 word2 ...\"\n  \
akihabara wallet regen-hotkey --uri //validator1 --wallet.hotkey v1   (local chains only)"
    )]
    RegenHotkey {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The mnemonic, quoted; `-` reads it from standard input
        #[arg(
            long,
            value_name = "WORDS",
            required_unless_present = "uri",
            conflicts_with = "uri"
        )]
        mnemonic: Option<String>,
        /// A Substrate secret URI such as //Alice or //validator1
        #[arg(long, value_name = "URI")]
        uri: Option<String>,
        /// Replace an existing hotkey
        #[arg(long)]
        overwrite: bool,
        /// Print the wallet summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the wallets and hotkeys under --wallet.path
    List {
        /// Directory holding the wallets
        #[arg(long = "wallet.path", value_name = "DIR", default_value = akihabara_core::wallet::DEFAULT_WALLET_PATH)]
        path: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a wallet's addresses (public files only; never asks for a password)
    Show {
        #[command(flatten)]
        wallet: WalletArgs,
        /// Print JSON: {"name", "path", "coldkeypub", "hotkeys": [{"name", "ss58"}]}
        #[arg(long)]
        json: bool,
    },
    /// Sign a message with the hotkey (or --coldkey)
    Sign {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// The message; its UTF-8 bytes are signed
        #[arg(long, value_name = "TEXT")]
        message: String,
        /// Sign with the coldkey (asks for its password) instead of the hotkey
        #[arg(long)]
        coldkey: bool,
        /// Print {"ss58", "message", "signature"}
        #[arg(long)]
        json: bool,
    },
    /// Check a signature: exit 0 when valid, 1 when not
    Verify {
        /// The signer's address
        #[arg(long, value_name = "SS58")]
        ss58: String,
        /// The message that was signed
        #[arg(long, value_name = "TEXT")]
        message: String,
        /// The signature, hex (0x optional)
        #[arg(long, value_name = "HEX")]
        signature: String,
    },
}
