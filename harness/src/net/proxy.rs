//! TCP proxies (under construction).
