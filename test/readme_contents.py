#!/usr/bin/env python3
# test/readme_contents.py — rewrite the table of contents of README.md (between
# the <!-- contents --> markers) from its ## and ### headings.  Run it after
# adding or renaming a section:  python3 test/readme_contents.py
import re,sys
p=sys.argv[1] if len(sys.argv) > 1 else __import__('os').path.join(__import__('os').path.dirname(__file__), '..', 'README.md')
s=open(p).read()
start='<!-- contents -->'; end='<!-- /contents -->'
body=s
if start in s:
    a=s.index(start); b=s.index(end)+len(end)
    body=s[:a]+s[b:]
def anchor(t):
    t=t.strip().lower()
    t=re.sub(r'[^\w\- ]','',t)
    return t.replace(' ','-')
lines=[]; seen={}
incode=False
for line in body.split('\n'):
    if line.startswith('```'): incode=not incode; continue
    if incode: continue
    m=re.match(r'^(##|###) (.*)$',line)
    if not m: continue
    t=m.group(2); a=anchor(t)
    if a in seen: seen[a]+=1; a=a+'-'+str(seen[a])
    else: seen[a]=0
    if m.group(1)=='##': lines.append('- [%s](#%s)'%(t,a))
    else: lines.append('  - [%s](#%s)'%(t,a))
toc=start+'\n## Contents\n\n'+'\n'.join(lines)+'\n'+end
if start in s:
    s=s[:a0]+toc+s[b0:] if False else s[:s.index(start)]+toc+s[s.index(end)+len(end):]
else:
    marker='```sh\ntest/run-tests.sh\n```\n'
    i=s.index(marker)+len(marker)
    s=s[:i]+'\n'+toc+'\n'+s[i:]
open(p,'w').write(s)
