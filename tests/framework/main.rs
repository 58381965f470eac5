//! The framework through its users' eyes: the word count in code and as a file, and
//! multi-lang components (real pystorm children).

mod multilang;
mod word_count;
