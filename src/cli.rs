//! Command-line flags and the commands behind them. (in progress)
