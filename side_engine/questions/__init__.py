"""The reviewer's questions, answered from a stored audit."""
