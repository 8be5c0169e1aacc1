"""Live mode: a face that speaks audio as it arrives (voice agents, live dubbing).

`face.py` prepares a face once (tracking, a steady square crop, the loop
the face idles on) and caches it; `timeline.py` places arriving speech on
the stream's clock; `session.py` draws frames in real time with the
embedded engines' mouth stages and hands them out with their audio.

    face = prepare_face("face.mp4")
    async with LiveSession(face) as session:
        session.push_audio(pcm)          # 16 kHz mono s16le, as it is spoken
        async for frame in session:      # 25 fps, idling between utterances
            ...
"""

from .face import FaceOptions, LiveFace, prepare_face
from .session import LIVE_ENGINES, RATE, LiveAvatar, LiveConfig, LiveFrame, LiveSession, LiveStats

__all__ = ["FaceOptions", "LIVE_ENGINES", "LiveAvatar", "LiveConfig", "LiveFace", "LiveFrame", "LiveSession", "LiveStats", "RATE", "prepare_face"]
