//! The [`Bolt`](crate::Bolt) trait (Storm's `IBolt`): a processing step.

use std::sync::Arc;

use crate::collector::{OutputCollector, OutputDeclarer};
use crate::context::TopologyContext;
use crate::error::{BoltError, ComponentError};
use crate::tuple::Tuple;

/// A processing step (Storm's `IBolt`).
///
/// All methods run on the bolt's own executor, one at a time. They must not block the
/// thread for long: blocking I/O belongs on a dedicated thread.
pub trait Bolt: Send + 'static {
    /// Declares the output streams (none by default: a sink).
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once before the first `execute`.
    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Processes one input tuple (or a tick tuple, see [`Tuple::is_tick`]).
    ///
    /// Returning `Err` fails the input with the error as reason; a panic fails it too,
    /// is counted and logged, and the bolt keeps running.
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError>;

    /// Called on the bolt's executor after its [`BoltWaker`](crate::BoltWaker) was woken, to finish
    /// asynchronous work: ack or fail held tuples, emit results (unanchored unless
    /// `emit_anchored` names the tuples).
    fn wake(&mut self, _out: &mut OutputCollector) {}

    /// Called once after the last input, when the topology shuts down.
    fn cleanup(&mut self) {}
}

impl<B: Bolt + ?Sized> Bolt for Box<B> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer)
    }
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        (**self).prepare(ctx)
    }
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        (**self).execute(input, out)
    }
    fn wake(&mut self, out: &mut OutputCollector) {
        (**self).wake(out)
    }
    fn cleanup(&mut self) {
        (**self).cleanup()
    }
}

/// Makes a new bolt instance for each task.
pub type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;
