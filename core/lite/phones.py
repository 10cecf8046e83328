"""Timed phones from speech with pocketsphinx, offline (its wheel bundles the en-us model).

Two ways in:

* :func:`recognize_phones` runs pocketsphinx's phone-loop ("allphone") search with the bundled phone
  language model. It needs nothing but audio.
* :func:`align_transcript` forces the known words onto the audio with the bundled dictionary, which
  times phones far better. When pocketsphinx's phone-level second pass fails (it does on some
  utterances with pauses), the word-level alignment is kept and each word's dictionary phones share
  its span in proportion to typical phone lengths.

:func:`phones_for_speech` picks alignment when a transcript is given and falls back to recognition,
with a warning, when the words cannot be aligned.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import numpy as np

from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_RATE = 100  # pocketsphinx analyses 10 ms frames
# Digital silence (exact zeros, as synthesised speech has between words) breaks pocketsphinx's
# cepstral normalisation and wrecks recognition; a faint fixed dither (about -50 dBFS) avoids that.
DITHER_LEVEL = 0.003
DITHER_SEED = 1234


@dataclass(frozen=True)
class PhoneSegment:
    """One phone (CMU symbol, or ``SIL``) from ``start`` to ``end`` seconds."""

    phone: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class AlignmentError(RuntimeError):
    """The transcript could not be aligned to the audio (unknown words, or the search failed)."""


def _pcm16(samples: np.ndarray) -> bytes:
    samples = np.asarray(samples, np.float32)
    dither = DITHER_LEVEL * np.random.default_rng(DITHER_SEED).standard_normal(len(samples)).astype(np.float32)
    return (np.clip(samples + dither, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError as error:
        raise TalkbridgeError(
            "the lite engine needs pocketsphinx for phone recognition; install it with "
            "`pip install 'talkbridge[lite]'` (in Blender: Install Engine in the add-on preferences; or ./scripts/dev setup)"
        ) from error
    return pocketsphinx


def _model_file(*parts: str) -> str:
    return os.path.join(_pocketsphinx().get_model_path(), *parts)


def _decoder(**options):
    return _pocketsphinx().Decoder(loglevel="FATAL", **options)


def recognize_phones(samples: np.ndarray) -> list[PhoneSegment]:
    """Free phone recognition over 16 kHz mono float samples."""
    if len(samples) < SAMPLE_RATE // 10:
        return [PhoneSegment("SIL", 0.0, len(samples) / SAMPLE_RATE)]
    # The phone loop needs neither the word language model nor the dictionary: skipping them saves
    # most of the decoder's start-up time.
    decoder = _decoder(
        allphone=_model_file("en-us", "en-us-phone.lm.bin"), backtrace=True, lw=2.0, lm=None, dict=None
    )
    decoder.start_utt()
    decoder.process_raw(_pcm16(samples), full_utt=True)
    decoder.end_utt()
    segments = [
        PhoneSegment(seg.word, seg.start_frame / FRAME_RATE, (seg.end_frame + 1) / FRAME_RATE)
        for seg in decoder.seg()
    ]
    return segments or [PhoneSegment("SIL", 0.0, len(samples) / SAMPLE_RATE)]


def normalise_transcript(text: str) -> list[str]:
    """Lower-case words as the dictionary spells them: punctuation dropped, apostrophes kept."""
    cleaned = re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " "))
    return [word.strip("'") for word in cleaned.split() if word.strip("'")]


# Relative typical durations used to share a word's span among its phones when only word timing
# is known: vowels are long, stops short.
_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
_STOPS = {"P", "B", "T", "D", "K", "G"}


def _phone_weight(phone: str) -> float:
    if phone in _VOWELS:
        return 1.6
    if phone in _STOPS:
        return 0.8
    return 1.0


def align_transcript(samples: np.ndarray, text: str) -> list[PhoneSegment]:
    """Force-align ``text`` to the audio; raises :class:`AlignmentError` when that is impossible."""
    words = normalise_transcript(text)
    if not words:
        raise AlignmentError("the transcript has no words")
    decoder = _decoder(lm=None)  # alignment needs the dictionary, not the word language model
    unknown = [word for word in words if decoder.lookup_word(word) is None]
    if unknown:
        raise AlignmentError(f"words missing from the pronunciation dictionary: {', '.join(sorted(set(unknown)))}")
    pcm = _pcm16(samples)
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError as error:
        raise AlignmentError(f"word alignment failed: {error}") from error
    hypothesis = decoder.hyp()
    if hypothesis is None or not hypothesis.hypstr.strip():
        raise AlignmentError("word alignment found no path through the transcript")
    word_spans = [
        (seg.word, seg.start_frame / FRAME_RATE, (seg.end_frame + 1) / FRAME_RATE) for seg in decoder.seg()
    ]
    try:
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        phones = [
            PhoneSegment(phone.name, phone.start / FRAME_RATE, (phone.start + phone.duration) / FRAME_RATE)
            for word in decoder.get_alignment()
            for phone in word
        ]
        if phones:
            return phones
    except RuntimeError:
        log.debug("phone-level alignment failed; sharing word spans among dictionary phones")
    return _split_words(decoder, word_spans)


def _split_words(decoder, word_spans: list[tuple[str, float, float]]) -> list[PhoneSegment]:
    segments: list[PhoneSegment] = []
    for word, start, end in word_spans:
        if word.startswith("<") or word.startswith("[") or end <= start:
            if end > start:
                segments.append(PhoneSegment("SIL", start, end))
            continue
        base = re.sub(r"\(\d+\)$", "", word)
        pronunciation = (decoder.lookup_word(base) or "").split()
        if not pronunciation:
            segments.append(PhoneSegment("SIL", start, end))
            continue
        weights = np.array([_phone_weight(p) for p in pronunciation])
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        segments.extend(PhoneSegment(p, float(a), float(b)) for p, a, b in zip(pronunciation, edges[:-1], edges[1:]))
    return segments


def phones_for_speech(samples: np.ndarray, transcript: str | None = None) -> tuple[list[PhoneSegment], str]:
    """Timed phones and how they were found (``"alignment"`` or ``"recognition"``)."""
    if transcript is not None and transcript.strip():
        try:
            return align_transcript(samples, transcript), "alignment"
        except AlignmentError as error:
            log.warning("transcript alignment failed (%s); using free phone recognition instead", error)
    return recognize_phones(samples), "recognition"
