//! Core newtypes: quantities, ids, accounts and windows.

mod account;
mod ids;
mod units;

pub use account::{AccountId, Coldkey, Hotkey, SS58_PREFIX, Ss58Error};
pub use ids::{Block, Netuid, Uid, Window, WindowError};
pub use units::{RAO_PER_TAO, Rao, Tao, TaoParseError};
