#!/usr/bin/env python3
"""manifest-puts.py - latency of sequential manifest PUTs on one connection.

Usage: manifest-puts.py PORT PASSWORD COUNT TAG_PREFIX [new]
Pushes one config blob to repository `pb` (create-on-push), then COUNT manifest PUTs,
one at a time, each to a new tag TAG_PREFIX<i>; with `new`, each manifest differs (an
annotation), so every PUT stores a new image. Prints p50, p90 and the mean in ms.
User AWS, PASSWORD a registry password (`berth admin login-password`). Loopback only.
"""
import sys, time, json, hashlib, base64, http.client, statistics
port=int(sys.argv[1]); pw=sys.argv[2]; n=int(sys.argv[3])
auth="Basic "+base64.b64encode(("AWS:"+pw).encode()).decode()
c=http.client.HTTPConnection("127.0.0.1",port)
def req(m,p,body=None,h=None):
    hh={"Authorization":auth}; hh.update(h or {})
    c.request(m,p,body=body,headers=hh); r=c.getresponse(); b=r.read(); return r.status,r.headers,b
cfg=b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
d="sha256:"+hashlib.sha256(cfg).hexdigest()
s,h,_=req("POST","/v2/pb/blobs/uploads/")
loc=h["Location"]; sep='&' if '?' in loc else '?'
s,h,_=req("PUT",loc+sep+"digest="+d,cfg,{"Content-Type":"application/octet-stream"})
assert s==201,s
man=json.dumps({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":d,"size":len(cfg)},"layers":[]}).encode()
lat=[]
for i in range(n):
    t=time.perf_counter()
    m=man if len(sys.argv)<6 else man[:-1]+(',"annotations":{"i":"%s%d"}}'%(sys.argv[4],i)).encode()
    s,h,_=req("PUT","/v2/pb/manifests/%s%d"%(sys.argv[4],i),m,{"Content-Type":"application/vnd.oci.image.manifest.v1+json"})
    lat.append((time.perf_counter()-t)*1000)
    assert s==201,s
lat.sort(); print("p50 %.3f p90 %.3f mean %.3f"%(lat[n//2],lat[n*9//10],statistics.mean(lat)))
