"""The coach: session lifecycle, routine, progress, prompts, speech, history."""
